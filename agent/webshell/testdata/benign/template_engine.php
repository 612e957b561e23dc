<?php
/**
 * Tiny template engine: templates live in the application's own
 * templates/ directory (never user input) and are compiled to PHP.
 */
class Template
{
    private $dir;
    private $cacheDir;

    public function __construct($dir, $cacheDir)
    {
        $this->dir = rtrim($dir, '/');
        $this->cacheDir = rtrim($cacheDir, '/');
    }

    public function compile($source)
    {
        $php = preg_replace('/\{\{\s*(\w+)\s*\}\}/', '<?php echo htmlspecialchars($$1, ENT_QUOTES); ?>', $source);
        $php = preg_replace('/\{%\s*if (\w+)\s*%\}/', '<?php if ($$1): ?>', $php);
        $php = preg_replace('/\{%\s*endif\s*%\}/', '<?php endif; ?>', $php);
        return $php;
    }

    public function render($name, array $vars)
    {
        if (!preg_match('/^[a-z0-9_]+$/', $name)) {
            throw new InvalidArgumentException('bad template name');
        }
        $compiled = $this->compile(file_get_contents($this->dir . '/' . $name . '.tpl'));
        extract($vars, EXTR_SKIP);
        ob_start();
        eval('?>' . $compiled);
        return ob_get_clean();
    }
}
