package trust

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/memory"
	"github.com/hiddeco/sshsig"
	"golang.org/x/crypto/ssh"
)

// fuzzKeys are deterministic signing keys, so that a crashing input saved
// under testdata/fuzz carries signatures that still mean something when it
// is replayed: trusted (in allowed_signers, namespaces="git"), retired
// (trusted until 2020), stranger (not trusted), and an OpenPGP key that is
// trusted.
type fuzzKeys struct {
	trusted, retired, stranger ssh.Signer
	pgp                        *openpgp.Entity
	set                        *TrustSet
	pgpRing                    openpgp.EntityList // public part of pgp only
}

func sshKeyFrom(t testing.TB, name string) ssh.Signer {
	seed := sha256.Sum256([]byte("picket fuzz " + name))
	s, err := ssh.NewSignerFromKey(ed25519.NewKeyFromSeed(seed[:]))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// fuzzPGPTime is the OpenPGP key's and signatures' creation time.
var fuzzPGPTime = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func newFuzzKeys(t testing.TB) *fuzzKeys {
	k := &fuzzKeys{trusted: sshKeyFrom(t, "trusted"), retired: sshKeyFrom(t, "retired"), stranger: sshKeyFrom(t, "stranger")}
	cfg := &packet.Config{Rand: rand.NewChaCha8(sha256.Sum256([]byte("picket fuzz pgp"))), Algorithm: packet.PubKeyAlgoEdDSA,
		Time: func() time.Time { return fuzzPGPTime }}
	e, err := openpgp.NewEntity("Fuzz Signer", "", "fuzz@example.com", cfg)
	if err != nil {
		t.Fatal(err)
	}
	k.pgp = e
	var pub bytes.Buffer
	if err := e.Serialize(&pub); err != nil {
		t.Fatal(err)
	}
	if k.pgpRing, err = openpgp.ReadKeyRing(&pub); err != nil {
		t.Fatal(err)
	}
	line := func(s ssh.Signer) string {
		return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.PublicKey())))
	}
	signers, err := ParseAllowedSigners([]byte(
		"admin@example.com namespaces=\"git\" "+line(k.trusted)+"\n"+
			"old@example.com valid-before=\"20200101Z\" "+line(k.retired)+"\n"), "allowed_signers")
	if err != nil {
		t.Fatal(err)
	}
	k.set = NewTrustSet(signers, k.pgpRing)
	return k
}

func (k *fuzzKeys) sshSign(t testing.TB, s ssh.Signer, ns string, payload []byte) string {
	sig, err := sshsig.Sign(bytes.NewReader(payload), s, sshsig.HashSHA512, ns)
	if err != nil {
		t.Fatal(err)
	}
	return string(sshsig.Armor(sig))
}

func (k *fuzzKeys) pgpSign(t testing.TB, payload []byte) string {
	var b bytes.Buffer
	cfg := &packet.Config{Time: func() time.Time { return fuzzPGPTime.Add(time.Hour) }}
	if err := openpgp.ArmoredDetachSign(&b, k.pgp, bytes.NewReader(payload), cfg); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// emptyTree is the hash of git's empty tree, which the fuzzed commits name.
const emptyTree = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"

const fuzzHeaders = "tree " + emptyTree + "\n" +
	"parent 1111111111111111111111111111111111111111\n" +
	"author A U Thor <author@example.com> 1767225600 +0000\n" +
	"committer C O Mitter <committer@example.com> 1767225600 +0000\n"

const fuzzBody = "\nRaise the SSH brute-force threshold\n\nSigned-off-by: A U Thor <author@example.com>\n"

// withSig inserts a gpgsig header carrying armored after the headers, the
// way git writes it.
func withSig(headers, armored, body string) []byte {
	armored = strings.TrimSuffix(armored, "\n")
	return []byte(headers + "gpgsig " + strings.ReplaceAll(armored, "\n", "\n ") + "\n" + body)
}

// gitSplit separates a raw commit into what git verifies: the payload and
// the signature, following parse_buffer_signed_by_header in git's commit.c
// for a SHA-1 repository. It is written from git's code, not go-git's, so
// that it can judge what go-git and VerifyCommit make of the same bytes.
func gitSplit(raw []byte) (payload, sig []byte) {
	const header = "gpgsig"
	inSig, other := false, false
	for line := raw; len(line) > 0; {
		next := len(line)
		if i := bytes.IndexByte(line, '\n'); i >= 0 {
			next = i + 1
		}
		var s []byte
		switch {
		case inSig && line[0] == ' ':
			s = line[1:next]
		case bytes.HasPrefix(line, []byte(header+" ")):
			s = line[len(header)+1 : next]
			other = false
		case bytes.HasPrefix(line, []byte("gpgsig")):
			other = true
		case other && line[0] != ' ':
			other = false
		}
		if s != nil {
			sig = append(sig, s...)
			inSig = true
		} else {
			if line[0] == '\n' {
				next = len(line) // the message, verbatim
			}
			if !other {
				payload = append(payload, line[:next]...)
			}
			inSig = false
		}
		line = line[next:]
	}
	return payload, sig
}

// decodeCommit parses raw as a commit object the way a repository read
// does; nil when go-git refuses it.
func decodeCommit(raw []byte) (*object.Commit, plumbing.EncodedObject) {
	o := &plumbing.MemoryObject{}
	o.SetType(plumbing.CommitObject)
	if _, err := o.Write(raw); err != nil {
		return nil, nil
	}
	c := &object.Commit{}
	if err := c.Decode(o); err != nil {
		return nil, nil
	}
	return c, o
}

// reallySigned reports whether, by git's reading of raw, one of the trusted
// keys signed exactly its payload in namespace git, and returns the
// fingerprint VerifyCommit must name.
func (k *fuzzKeys) reallySigned(raw []byte) (format, fingerprint string, ok bool) {
	payload, sig := gitSplit(raw)
	sig = bytes.TrimLeft(sig, " \t\r\n")
	if bytes.Count(sig, []byte("-----BEGIN ")) != 1 {
		return "", "", false
	}
	if s, err := sshsig.Unarmor(sig); err == nil {
		for _, key := range []ssh.Signer{k.trusted, k.retired} {
			if !bytes.Equal(s.PublicKey.Marshal(), key.PublicKey().Marshal()) {
				continue
			}
			if sshsig.Verify(bytes.NewReader(payload), s, key.PublicKey(), s.HashAlgorithm, "git") == nil {
				return "ssh", ssh.FingerprintSHA256(key.PublicKey()), true
			}
		}
		return "", "", false
	}
	blk, err := armor.Decode(bytes.NewReader(sig))
	if err != nil || blk.Type != "PGP SIGNATURE" {
		return "", "", false
	}
	if e, err := openpgp.CheckDetachedSignature(k.pgpRing, bytes.NewReader(payload), blk.Body, nil); err == nil {
		return "openpgp", pgpFingerprint(e), true
	}
	return "", "", false
}

// fuzzSeeds are commits that are signed, signed wrongly, or malformed in
// the ways a hostile repository would try.
func fuzzSeeds(t testing.TB, k *fuzzKeys) [][]byte {
	payload := []byte(fuzzHeaders + fuzzBody)
	good := k.sshSign(t, k.trusted, "git", payload)
	pgp := k.pgpSign(t, payload)
	half := good[:len(good)/2]
	mergetag := "mergetag object 2222222222222222222222222222222222222222\n type commit\n tag v1\n tagger T <t@example.com> 1767225600 +0000\n \n release\n" +
		" " + strings.ReplaceAll(strings.TrimSuffix(pgp, "\n"), "\n", "\n ") + "\n"
	hdr, rest, _ := strings.Cut(fuzzHeaders, "author ")
	outOfPlace := withSig(hdr, good, "author "+rest+fuzzBody)
	seeds := [][]byte{
		withSig(fuzzHeaders, good, fuzzBody),                                                                                // valid, trusted SSH key
		withSig(fuzzHeaders, pgp, fuzzBody),                                                                                 // valid, trusted OpenPGP key
		withSig(fuzzHeaders, k.sshSign(t, k.stranger, "git", payload), fuzzBody),                                            // untrusted key
		withSig(fuzzHeaders, k.sshSign(t, k.retired, "git", payload), fuzzBody),                                             // key retired before the commit time
		withSig(fuzzHeaders, k.sshSign(t, k.trusted, "file", payload), fuzzBody),                                            // other namespace
		withSig(fuzzHeaders, good, fuzzBody+"and a line added after signing\n"),                                             // valid signature, other bytes
		withSig(strings.Replace(fuzzHeaders, "1111", "3333", 1), good, fuzzBody),                                            // other parent
		withSig(fuzzHeaders, half, fuzzBody),                                                                                // truncated
		withSig(fuzzHeaders+"gpgsig "+strings.ReplaceAll(strings.TrimSuffix(good, "\n"), "\n", "\n ")+"\n", good, fuzzBody), // duplicated header
		withSig(fuzzHeaders, strings.Replace(good, "SSH SIGNATURE", "PGP SIGNATURE", -1), fuzzBody),                         // wrong armor
		withSig(fuzzHeaders, strings.Replace(pgp, "PGP SIGNATURE", "SSH SIGNATURE", -1), fuzzBody),
		withSig(fuzzHeaders, "-----BEGIN SIGNED MESSAGE-----\nMIIB\n-----END SIGNED MESSAGE-----", fuzzBody),
		withSig(fuzzHeaders, good, fuzzBody+"\x00nul\x00"),                                                             // embedded NULs
		withSig(fuzzHeaders, strings.Replace(good, "\n", "\n\x00", 2), fuzzBody),                                       // NUL in the armor
		withSig(fuzzHeaders+mergetag, k.sshSign(t, k.trusted, "git", []byte(fuzzHeaders+mergetag+fuzzBody)), fuzzBody), // mergetag with its own signature
		withSig(fuzzHeaders+"gpgsig-sha256 "+strings.ReplaceAll(strings.TrimSuffix(good, "\n"), "\n", "\n ")+"\n", good, fuzzBody),
		[]byte(fuzzHeaders + "gpgsig-sha256 " + strings.ReplaceAll(strings.TrimSuffix(good, "\n"), "\n", "\n ") + "\n" + fuzzBody), // only a SHA-256 signature
		[]byte(fuzzHeaders + "gpgsig\n " + strings.ReplaceAll(strings.TrimSuffix(good, "\n"), "\n", "\n ") + "\n" + fuzzBody),      // header without its space
		outOfPlace, // signature before author and committer, which go-git then drops
		withSig(fuzzHeaders, strings.ReplaceAll(good, "\n", "\r\n"), fuzzBody), // CRLF in the armor
		[]byte(fuzzHeaders + fuzzBody),                                         // unsigned
		[]byte("tree 0\n"),
		{},
	}
	return seeds
}

// FuzzVerifyCommit feeds raw commit objects to VerifyCommit and, stored in a
// repository, to Verify. Properties: no panic; a commit is accepted only if,
// by git's own reading of the bytes, a trusted key signed exactly its
// payload (so a mutated commit that keeps a valid signature must keep the
// signed bytes too); the signer named is that key; Verify agrees with
// VerifyCommit.
func FuzzVerifyCommit(f *testing.F) {
	k := newFuzzKeys(f)
	for _, s := range fuzzSeeds(f, k) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if len(raw) > 2*maxCommitSize {
			t.Skip("larger than the bound VerifyCommit enforces")
		}
		c, o := decodeCommit(raw)
		if c == nil {
			return
		}
		s, err := k.set.VerifyCommit(c)
		var rej *Rejection
		if err != nil && !errors.As(err, &rej) {
			t.Fatalf("not a rejection: %v", err)
		}
		if rej != nil && (rej.Commit != c.Hash.String() || rej.Reason == "" || rej.Kind.String() == "") {
			t.Fatalf("rejection does not say which commit or why: %#v", rej)
		}
		format, fp, signed := k.reallySigned(raw)
		if err == nil {
			if !signed {
				t.Fatalf("accepted as signed by %v, but no trusted key signed these bytes:\n%q", s, raw)
			}
			if s.Format != format || s.Fingerprint != fp {
				t.Fatalf("signer %+v, but the signature is by %s %s", s, format, fp)
			}
			if fp == ssh.FingerprintSHA256(k.retired.PublicKey()) && !c.Committer.When.Before(time.Date(2020, 1, 2, 0, 0, 0, 0, time.UTC)) {
				t.Fatalf("retired key accepted for a commit of %v", c.Committer.When)
			}
		}

		// The same object read from a repository through Verify (first
		// sync, so only the head is checked, against the local set).
		st := memory.NewStorage()
		repo, ierr := git.Init(st, nil)
		if ierr != nil {
			t.Fatal(ierr)
		}
		tree := &plumbing.MemoryObject{}
		tree.SetType(plumbing.TreeObject)
		if _, err := st.SetEncodedObject(tree); err != nil {
			t.Fatal(err)
		}
		h, serr := st.SetEncodedObject(o)
		if serr != nil {
			t.Fatal(serr)
		}
		res, verr := Verify(repo, Request{To: h, Mode: FirstParent, Local: k.set})
		var vrej *Rejection
		switch {
		case verr == nil && err != nil:
			t.Fatalf("Verify accepts what VerifyCommit rejects (%v)", err)
		case verr == nil && res.Signer != s:
			t.Fatalf("Verify names %v, VerifyCommit %v", res.Signer, s)
		case err != nil && !errors.As(verr, &vrej):
			t.Fatalf("VerifyCommit rejects (%v) but Verify says %v", err, verr)
		case err == nil && verr != nil && c.TreeHash.String() == emptyTree:
			t.Fatalf("VerifyCommit accepts but Verify says %v", verr)
		}
	})
}

// TestVerifyCommitHuge: an object over the size bound is refused before
// hashing, even when its signature is otherwise fine.
func TestVerifyCommitHuge(t *testing.T) {
	k := newFuzzKeys(t)
	body := fuzzBody + strings.Repeat("x", maxCommitSize) + "\n"
	payload := []byte(fuzzHeaders + body)
	c, _ := decodeCommit(withSig(fuzzHeaders, k.sshSign(t, k.trusted, "git", payload), body))
	if c == nil {
		t.Fatal("not decoded")
	}
	_, err := k.set.VerifyCommit(c)
	var rej *Rejection
	if !errors.As(err, &rej) || rej.Kind != BadSignature || !strings.Contains(rej.Reason, "larger than") {
		t.Fatalf("got %v", err)
	}
}

// TestFuzzSeedsMeanWhatTheySay keeps the seed corpus honest: the positive
// seeds verify (so the fuzzer mutates real signatures) and every negative
// one is rejected with the kind its comment names.
func TestFuzzSeedsMeanWhatTheySay(t *testing.T) {
	k := newFuzzKeys(t)
	seeds := fuzzSeeds(t, k)
	want := []RejectKind{0, 0, Untrusted, OutsideValidity, WrongNamespace, BadSignature, BadSignature, BadSignature,
		Unsupported, BadSignature, BadSignature, Unsupported, BadSignature, BadSignature, 0, 0, Unsigned, BadSignature,
		0, 0, Unsigned}
	for i, w := range want {
		c, _ := decodeCommit(seeds[i])
		if c == nil {
			t.Fatalf("seed %d does not decode", i)
		}
		s, err := k.set.VerifyCommit(c)
		var rej *Rejection
		switch {
		case w == 0 && err != nil:
			t.Errorf("seed %d: %v", i, err)
		case w == 0 && s.Fingerprint == "":
			t.Errorf("seed %d: no signer", i)
		case w != 0 && (!errors.As(err, &rej) || rej.Kind != w):
			t.Errorf("seed %d: got %v, want %v", i, err, w)
		}
		// Signed by a trusted key but outside its validity is the
		// only rejection of a real signature here.
		if _, _, signed := k.reallySigned(seeds[i]); signed != (w == 0 || w == OutsideValidity) {
			t.Errorf("seed %d: oracle says signed=%v", i, signed)
		}
	}
}
