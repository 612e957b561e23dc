<?php
$routes = [
    '/' => 'home.php',
    '/about' => 'about.php',
    '/contact' => 'contact.php',
];
$path = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);
$path = rtrim($path, '/') ?: '/';
if (!isset($routes[$path])) {
    http_response_code(404);
    $path = '/';
}
require __DIR__ . '/pages/' . $routes[$path];
