<?php
require __DIR__ . '/auth.php';
require_admin();

$action = $_GET['action'] ?? 'status';
$output = '';
switch ($action) {
    case 'disk':
        $output = shell_exec('df -h /');
        break;
    case 'uptime':
        exec('/usr/bin/uptime', $lines);
        $output = implode("\n", $lines);
        break;
    case 'nginx':
        exec('/usr/bin/systemctl is-active nginx', $lines, $rc);
        $output = $rc === 0 ? 'nginx is running' : 'nginx is NOT running';
        break;
    default:
        $output = 'PHP ' . PHP_VERSION . ' on ' . php_uname('n');
}
?>
<h1>Server status</h1>
<pre><?= htmlspecialchars($output) ?></pre>
