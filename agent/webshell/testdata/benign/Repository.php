<?php
final class Repository
{
    public function __construct(private PDO $pdo) {}

    public function migrate(): void
    {
        $this->pdo->exec('CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)');
        $this->pdo->exec('CREATE INDEX IF NOT EXISTS notes_body ON notes(body)');
    }

    public function add(string $body): int
    {
        $st = $this->pdo->prepare('INSERT INTO notes(body) VALUES (?)');
        $st->execute([$body]);
        return (int) $this->pdo->lastInsertId();
    }
}

$repo = new Repository(new PDO('sqlite:/var/lib/app/notes.db'));
$repo->migrate();
if (!empty($_POST['body'])) {
    $repo->add($_POST['body']);
}
