<?php
require __DIR__ . '/bootstrap.php';

const MAX_BYTES = 5 * 1024 * 1024;
$allowed = ['image/jpeg' => 'jpg', 'image/png' => 'png', 'application/pdf' => 'pdf'];

if ($_SERVER['REQUEST_METHOD'] !== 'POST' || !isset($_FILES['document'])) {
    http_response_code(400);
    exit('no file');
}
$f = $_FILES['document'];
if ($f['error'] !== UPLOAD_ERR_OK || $f['size'] > MAX_BYTES) {
    http_response_code(400);
    exit('upload failed');
}
$finfo = new finfo(FILEINFO_MIME_TYPE);
$mime = $finfo->file($f['tmp_name']);
if (!isset($allowed[$mime])) {
    http_response_code(415);
    exit('type not allowed');
}
$name = bin2hex(random_bytes(16)) . '.' . $allowed[$mime];
$dest = '/var/lib/app/uploads/' . $name;
if (!move_uploaded_file($f['tmp_name'], $dest)) {
    http_response_code(500);
    exit('could not store');
}
echo json_encode(['stored' => $name]);
