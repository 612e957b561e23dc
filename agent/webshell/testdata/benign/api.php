<?php
header('Content-Type: application/json');
$data = json_decode(file_get_contents('php://input'), true);
if (!is_array($data) || empty($data['title'])) {
    http_response_code(422);
    echo json_encode(['error' => 'title required']);
    exit;
}
$pdo = new PDO('mysql:host=localhost;dbname=app', 'app', getenv('DB_PASSWORD'));
$st = $pdo->prepare('INSERT INTO todos(title, done) VALUES (?, 0)');
$st->execute([mb_substr($data['title'], 0, 200)]);
echo json_encode(['id' => (int) $pdo->lastInsertId()]);
