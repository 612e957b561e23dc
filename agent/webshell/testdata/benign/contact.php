<?php
$errors = [];
if ($_SERVER['REQUEST_METHOD'] === 'POST') {
    $name = trim($_POST['name'] ?? '');
    $email = filter_var($_POST['email'] ?? '', FILTER_VALIDATE_EMAIL);
    $message = trim($_POST['message'] ?? '');
    if ($name === '') { $errors[] = 'Name is required.'; }
    if (!$email) { $errors[] = 'A valid email is required.'; }
    if (strlen($message) < 10) { $errors[] = 'Message is too short.'; }
    if (!$errors) {
        $body = "From: $name <$email>\n\n" . $message;
        mail('info@example.org', 'Contact form', $body, ['Reply-To' => $email]);
        header('Location: /thanks');
        exit;
    }
}
?>
<form method="post">
  <?php foreach ($errors as $e): ?><p class="error"><?= htmlspecialchars($e) ?></p><?php endforeach; ?>
  <input name="name"> <input name="email"> <textarea name="message"></textarea>
  <button>Send</button>
</form>
