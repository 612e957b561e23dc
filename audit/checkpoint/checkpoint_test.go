package checkpoint

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/picket-agent/picket/audit"
	"golang.org/x/crypto/ssh"
)

func newKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

func sample() Checkpoint {
	return Checkpoint{
		Host:  "web1",
		Count: 156,
		Seq:   156,
		Head:  strings.Repeat("ab", 32),
		Time:  time.Date(2026, 11, 25, 10, 30, 0, 123456789, time.FixedZone("CET", 3600)),
	}
}

func TestSignVerifyRoundTrip(t *testing.T) {
	priv := newKey(t)
	s, err := Sign(priv, sample())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s.KeyID, "SHA256:") {
		t.Errorf("KeyID = %q", s.KeyID)
	}
	if err := Verify(priv.Public(), s); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	// Through the stored form: one JSON line.
	line, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(line), "\n") {
		t.Fatal("JSON spans lines")
	}
	for _, field := range []string{`"host":"web1"`, `"count":156`, `"seq":156`, `"head":`, `"time":`, `"key_id":"SHA256:`, `"signature":`} {
		if !strings.Contains(string(line), field) {
			t.Errorf("JSON %s lacks %s", line, field)
		}
	}
	var back Signed
	if err := json.Unmarshal(line, &back); err != nil {
		t.Fatal(err)
	}
	if err := Verify(priv.Public(), back); err != nil {
		t.Fatalf("Verify after JSON round trip: %v", err)
	}
}

func TestTamperedFails(t *testing.T) {
	priv := newKey(t)
	s, err := Sign(priv, sample())
	if err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(*Signed){
		"count":     func(s *Signed) { s.Count-- },
		"seq":       func(s *Signed) { s.Seq++ },
		"head":      func(s *Signed) { s.Head = strings.Repeat("cd", 32) },
		"host":      func(s *Signed) { s.Host = "web2" },
		"time":      func(s *Signed) { s.Time = s.Time.Add(time.Second) },
		"signature": func(s *Signed) { s.Signature = s.Signature[:10] + "AAAA" + s.Signature[14:] },
		"not b64":   func(s *Signed) { s.Signature = "%%%" },
	} {
		c := s
		mutate(&c)
		if err := Verify(priv.Public(), c); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s altered: err = %v, want ErrBadSignature", name, err)
		}
	}
}

func TestWrongKeyFails(t *testing.T) {
	s, err := Sign(newKey(t), sample())
	if err != nil {
		t.Fatal(err)
	}
	other := newKey(t)
	if err := Verify(other.Public(), s); !errors.Is(err, ErrBadSignature) {
		t.Errorf("other key: err = %v, want ErrBadSignature", err)
	}
	// Even if the attacker relabels the key id, the signature fails.
	s.KeyID, _ = KeyID(other.Public())
	if err := Verify(other.Public(), s); !errors.Is(err, ErrBadSignature) {
		t.Errorf("relabelled key id: err = %v, want ErrBadSignature", err)
	}
}

func TestSignRejectsForeignKeyID(t *testing.T) {
	cp := sample()
	cp.KeyID = "SHA256:somethingelse"
	if _, err := Sign(newKey(t), cp); err == nil {
		t.Error("Sign accepted a KeyID of another key")
	}
}

func TestECDSAKey(t *testing.T) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Sign(priv, sample())
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(priv.Public(), s); err != nil {
		t.Fatal(err)
	}
}

func TestParsePublicKey(t *testing.T) {
	priv := newKey(t)
	pub := priv.Public().(ed25519.PublicKey)
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	authorized := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp)))
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))

	for name, in := range map[string]string{
		"authorized key":          authorized,
		"authorized key, comment": authorized + " picket host key\n",
		"allowed signers":         `picket@web1 namespaces="git" ` + authorized,
		"allowed signers, quoted": `"picket web1",ops@x namespaces="git,file" valid-after="20260101" ` + authorized + " c",
		"allowed signers file":    "# hosts\n\n" + `picket@web1 namespaces="git" ` + authorized + "\n" + `web1-alias namespaces="git" ` + authorized + "\n",
		"pem":                     pemKey,
	} {
		got, err := ParsePublicKey([]byte(in))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !pub.Equal(got) {
			t.Errorf("%s: got another key", name)
		}
	}

	other := newKey(t).Public().(ed25519.PublicKey)
	osp, _ := ssh.NewPublicKey(other)
	two := authorized + "\n" + string(ssh.MarshalAuthorizedKey(osp))
	if _, err := ParsePublicKey([]byte(two)); err == nil {
		t.Error("two different keys accepted by ParsePublicKey")
	}
	keys, err := ParsePublicKeys([]byte(two))
	if err != nil || len(keys) != 2 {
		t.Errorf("ParsePublicKeys: %d keys, %v", len(keys), err)
	}
	// Verify with a whole file of keys: the right one is picked by KeyID.
	signed, err := Sign(priv, sample())
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyAny(keys, signed); err != nil {
		t.Errorf("VerifyAny: %v", err)
	}
	if err := VerifyAny(keys[1:], signed); !errors.Is(err, ErrBadSignature) {
		t.Errorf("VerifyAny without the key: %v", err)
	}
	for _, bad := range []string{"", "# only a comment\n", "hello world", "ssh-ed25519 notbase64"} {
		if _, err := ParsePublicKey([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}

	// A parsed key verifies what the private key signed.
	s, err := Sign(priv, sample())
	if err != nil {
		t.Fatal(err)
	}
	got, _ := ParsePublicKey([]byte(authorized))
	if err := Verify(got, s); err != nil {
		t.Error(err)
	}
}

func TestMatches(t *testing.T) {
	var e audit.Entry
	for i := 0; i < 3; i++ {
		e = audit.Seal(e.Seq, e.Hash, audit.Entry{Time: time.Now(), Kind: audit.KindSensor, Message: "m"})
	}
	cp := Checkpoint{Host: "web1", Count: 3, Seq: 3, Head: e.Hash}
	if err := Matches(cp, e); err != nil {
		t.Errorf("Matches: %v", err)
	}
	cp.Head = strings.Repeat("0", 64)
	if err := Matches(cp, e); err == nil {
		t.Error("different head matched")
	}
	cp.Head, cp.Seq = e.Hash, 2
	if err := Matches(cp, e); err == nil {
		t.Error("different seq matched")
	}
}
