<?php
class Mailer
{
    private $sendmail = '/usr/sbin/sendmail';

    public function send($to, $subject, $body)
    {
        $h = popen($this->sendmail . ' -t -i', 'w');
        if (!$h) {
            return false;
        }
        fwrite($h, "To: $to\nSubject: $subject\n\n$body\n");
        return pclose($h) === 0;
    }
}
