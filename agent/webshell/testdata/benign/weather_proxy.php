<?php
$city = isset($_GET['q']) ? $_GET['q'] : 'Paris';
$url = 'https://api.example.org/weather?q=' . urlencode($city) . '&units=metric';
$ch = curl_init($url);
curl_setopt($ch, CURLOPT_RETURNTRANSFER, true);
curl_setopt($ch, CURLOPT_TIMEOUT, 5);
$body = curl_exec($ch);
curl_close($ch);
header('Content-Type: application/json');
echo $body ?: json_encode(['error' => 'unavailable']);
