<?php
class FileCache
{
    public function __construct(private string $dir) {}

    public function get(string $key)
    {
        $file = $this->dir . '/' . sha1($key);
        if (!is_file($file)) {
            return null;
        }
        $data = file_get_contents($file);
        return unserialize(gzuncompress(base64_decode($data)), ['allowed_classes' => false]);
    }

    public function set(string $key, $value): void
    {
        $data = base64_encode(gzcompress(serialize($value)));
        file_put_contents($this->dir . '/' . sha1($key), $data, LOCK_EX);
    }
}
