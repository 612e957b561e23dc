// Package checkpoint signs and verifies audit chain heads. At each push the
// agent signs (host, count, last seq, head hash, time) with its host key and
// stores the result as one JSON line in audit/checkpoints.jsonl on its host
// branch; `picket audit verify --pubkey FILE` then checks offline that the
// chain it reads is the one the host attested: each checkpoint's signature is
// valid and its (Seq, Head) is the chain's entry at that seq. An attacker
// who rewrites the exported history must then also forge the host key.
//
// Signatures use sigstore's pkg/signature (ed25519 in practice; ECDSA and
// RSA keys work with SHA-256) over a fixed binary encoding, never over JSON,
// so re-serialising a checkpoint cannot change what was signed.
package checkpoint

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/picket-agent/picket/audit"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"golang.org/x/crypto/ssh"
)

// Checkpoint attests the state of a host's audit chain at a moment.
type Checkpoint struct {
	Host  string    `json:"host"`
	Count int64     `json:"count"` // entries in the chain
	Seq   int64     `json:"seq"`   // seq of the head entry
	Head  string    `json:"head"`  // hash of the head entry
	Time  time.Time `json:"time"`
	KeyID string    `json:"key_id"` // SHA256 fingerprint of the signing key, "SHA256:..."
}

// Signed is a checkpoint with its signature; one JSON line per checkpoint.
type Signed struct {
	Checkpoint
	Signature string `json:"signature"` // base64 (standard encoding)
}

// ErrBadSignature is wrapped by every verification failure: invalid
// signature, altered checkpoint, or a key other than the one that signed.
var ErrBadSignature = errors.New("checkpoint signature invalid")

// hashFunc is what sigstore uses for ECDSA/RSA keys; ed25519 ignores it
// (it hashes internally).
const hashFunc = crypto.SHA256

// encode is the signed message. Every field is length-prefixed so no two
// checkpoints encode the same bytes, and time is in UTC nanoseconds so the
// encoding does not depend on the zone or the JSON formatting.
func encode(cp Checkpoint) []byte {
	var b bytes.Buffer
	var n [8]byte
	field := func(s string) {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		b.Write(n[:])
		b.WriteString(s)
	}
	field("picket-checkpoint-v1")
	field(cp.Host)
	field(strconv.FormatInt(cp.Count, 10))
	field(strconv.FormatInt(cp.Seq, 10))
	field(cp.Head)
	field(strconv.FormatInt(cp.Time.UTC().UnixNano(), 10))
	field(cp.KeyID)
	return b.Bytes()
}

// KeyID returns the identifier stored in checkpoints for pub: its SSH
// SHA256 fingerprint, the same string `ssh-keygen -l` and hostkey print.
func KeyID(pub crypto.PublicKey) (string, error) {
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("checkpoint key: %w", err)
	}
	return ssh.FingerprintSHA256(sp), nil
}

// Sign signs cp with signer (an ed25519, ECDSA or RSA private key, e.g.
// hostkey.Key.Signer()). KeyID is filled from the signer's public key; a
// KeyID already set must match it. Time is normalised to UTC without a
// monotonic reading so the stored JSON round-trips exactly.
func Sign(signer crypto.Signer, cp Checkpoint) (Signed, error) {
	id, err := KeyID(signer.Public())
	if err != nil {
		return Signed{}, err
	}
	if cp.KeyID != "" && cp.KeyID != id {
		return Signed{}, fmt.Errorf("checkpoint names key %s but the signer is %s", cp.KeyID, id)
	}
	cp.KeyID = id
	cp.Time = cp.Time.UTC().Round(0)
	sv, err := signature.LoadSigner(signer, hashFunc)
	if err != nil {
		return Signed{}, fmt.Errorf("checkpoint signer: %w", err)
	}
	sig, err := sv.SignMessage(bytes.NewReader(encode(cp)))
	if err != nil {
		return Signed{}, fmt.Errorf("sign checkpoint: %w", err)
	}
	return Signed{Checkpoint: cp, Signature: base64.StdEncoding.EncodeToString(sig)}, nil
}

// Verify checks that s was signed by pub and not altered since.
func Verify(pub crypto.PublicKey, s Signed) error {
	id, err := KeyID(pub)
	if err != nil {
		return err
	}
	if s.KeyID != id {
		// The KeyID is covered by the signature, so this is not a shortcut
		// around verification; it only names the keys in the error.
		return fmt.Errorf("%w: checkpoint seq %d was signed by key %s, not by %s", ErrBadSignature, s.Seq, s.KeyID, id)
	}
	sig, err := base64.StdEncoding.DecodeString(s.Signature)
	if err != nil {
		return fmt.Errorf("%w: checkpoint seq %d: signature is not base64: %v", ErrBadSignature, s.Seq, err)
	}
	v, err := signature.LoadVerifier(pub, hashFunc)
	if err != nil {
		return fmt.Errorf("checkpoint verifier: %w", err)
	}
	if err := v.VerifySignature(bytes.NewReader(sig), bytes.NewReader(encode(s.Checkpoint))); err != nil {
		return fmt.Errorf("%w: checkpoint seq %d (count, head, time or host altered, or signature forged): %v", ErrBadSignature, s.Seq, err)
	}
	return nil
}

// VerifyAny verifies s with the key among pubs whose KeyID it names, so an
// operator can pass a whole allowed_signers file (ParsePublicKeys) holding
// every host's key.
func VerifyAny(pubs []crypto.PublicKey, s Signed) error {
	for _, pub := range pubs {
		if id, err := KeyID(pub); err == nil && id == s.KeyID {
			return Verify(pub, s)
		}
	}
	return fmt.Errorf("%w: checkpoint seq %d was signed by key %s, which is not among the %d given", ErrBadSignature, s.Seq, s.KeyID, len(pubs))
}

// Matches reports whether cp attests the chain entry found at cp.Seq: the
// caller verifies the chain, looks up the entry with that seq and calls
// Matches. An error means the chain was rewritten after the checkpoint was
// signed (or the checkpoint belongs to another chain).
func Matches(cp Checkpoint, entryAtSeq audit.Entry) error {
	if entryAtSeq.Seq != cp.Seq {
		return fmt.Errorf("checkpoint seq %d compared with entry %d", cp.Seq, entryAtSeq.Seq)
	}
	if entryAtSeq.Hash != cp.Head {
		return fmt.Errorf("checkpoint at seq %d (signed %s) attests head %s but the chain has %s there: history rewritten since", cp.Seq, cp.Time.UTC().Format(time.RFC3339), cp.Head, entryAtSeq.Hash)
	}
	return nil
}

// ParsePublicKey reads exactly one public key from data: an authorized-key
// line ("ssh-ed25519 AAAA... comment"), an allowed_signers line
// ("principal namespaces=\"git\" ssh-ed25519 AAAA..."), or a PEM "PUBLIC
// KEY" block. Data holding several different keys is refused; use
// ParsePublicKeys and pick by KeyID.
func ParsePublicKey(data []byte) (crypto.PublicKey, error) {
	keys, err := ParsePublicKeys(data)
	if err != nil {
		return nil, err
	}
	if len(keys) > 1 {
		return nil, fmt.Errorf("%d different public keys found; give the one of the host", len(keys))
	}
	return keys[0], nil
}

// ParsePublicKeys reads every distinct public key in data (PEM blocks, or
// authorized_keys / allowed_signers lines; blank lines and # comments are
// skipped), in order of appearance.
func ParsePublicKeys(data []byte) ([]crypto.PublicKey, error) {
	var keys []crypto.PublicKey
	seen := map[[32]byte]bool{}
	add := func(pub crypto.PublicKey) error {
		sp, err := ssh.NewPublicKey(pub)
		if err != nil {
			return err
		}
		h := sha256.Sum256(sp.Marshal())
		if !seen[h] {
			seen[h] = true
			keys = append(keys, pub)
		}
		return nil
	}
	if bytes.Contains(data, []byte("-----BEGIN ")) {
		rest := data
		for {
			var block *pem.Block
			block, rest = pem.Decode(rest)
			if block == nil {
				break
			}
			pub, err := cryptoutils.UnmarshalPEMToPublicKey(pem.EncodeToMemory(block))
			if err != nil {
				return nil, fmt.Errorf("PEM %s: %w", block.Type, err)
			}
			if err := add(pub); err != nil {
				return nil, fmt.Errorf("PEM %s: %w", block.Type, err)
			}
		}
		if len(keys) == 0 {
			return nil, errors.New("no PEM public key found")
		}
		return keys, nil
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		pub, err := parseKeyLine(text)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		if err := add(pub); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, errors.New("no public key found")
	}
	return keys, nil
}

// parseKeyLine finds "<keytype> <base64>" among the fields of an
// authorized_keys or allowed_signers line, whatever precedes it
// (principals, options such as namespaces="git").
func parseKeyLine(line string) (crypto.PublicKey, error) {
	fields := splitFields(line)
	for i := 0; i+1 < len(fields); i++ {
		blob, err := base64.StdEncoding.DecodeString(fields[i+1])
		if err != nil {
			continue
		}
		sp, err := ssh.ParsePublicKey(blob)
		if err != nil || sp.Type() != fields[i] {
			continue
		}
		cp, ok := sp.(ssh.CryptoPublicKey)
		if !ok {
			return nil, fmt.Errorf("key type %s is not supported", sp.Type())
		}
		return cp.CryptoPublicKey(), nil
	}
	return nil, errors.New("no \"<key type> <base64 key>\" found (want an ssh-ed25519 authorized-key or allowed_signers line, or a PEM public key)")
}

// splitFields splits on spaces and tabs outside double quotes, as OpenSSH
// does for allowed_signers (principals and options may be quoted).
func splitFields(s string) []string {
	var fields []string
	var cur strings.Builder
	quoted := false
	for _, r := range s {
		switch {
		case r == '"':
			quoted = !quoted
			cur.WriteRune(r)
		case (r == ' ' || r == '\t') && !quoted:
			if cur.Len() > 0 {
				fields = append(fields, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteRune(r)
		}
	}
	if cur.Len() > 0 {
		fields = append(fields, cur.String())
	}
	return fields
}
