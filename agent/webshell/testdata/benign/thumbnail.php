<?php
$w = isset($_GET['w']) ? max(16, min(1024, (int) $_GET['w'])) : 200;
$name = basename($_GET['img'] ?? '');
$src = __DIR__ . '/images/' . $name;
if (!preg_match('/^[\w-]+\.(jpe?g|png)$/i', $name) || !is_file($src)) {
    http_response_code(404);
    exit;
}
$img = imagecreatefromstring(file_get_contents($src));
$h = (int) round(imagesy($img) * $w / imagesx($img));
$thumb = imagescale($img, $w, $h);
header('Content-Type: image/jpeg');
imagejpeg($thumb, null, 85);
