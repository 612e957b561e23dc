<?php
function render_markdown($text)
{
    $text = htmlspecialchars($text, ENT_QUOTES);
    $text = preg_replace('/\*\*(.+?)\*\*/s', '<strong>$1</strong>', $text);
    $text = preg_replace('/\*(.+?)\*/s', '<em>$1</em>', $text);
    $text = preg_replace_callback('/^(#{1,6}) (.*)$/m', function ($m) {
        $n = strlen($m[1]);
        return "<h$n>" . $m[2] . "</h$n>";
    }, $text);
    return nl2br($text);
}
echo render_markdown($_POST['text'] ?? '');
