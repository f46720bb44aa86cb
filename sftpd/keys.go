package sftpd

import (
	"bytes"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/crypto/ssh"
)

// minRSABits is the smallest RSA modulus SPEC §3 accepts.
const minRSABits = 2048

// PublicKey is a parsed client key with the comment it was given with.
type PublicKey struct {
	Key     ssh.PublicKey
	Comment string
}

// ParseKeys parses one or more client public keys: authorized_keys lines
// (options are accepted and ignored, blank lines and # comments skipped) and
// RFC 4716 "---- BEGIN SSH2 PUBLIC KEY ----" blocks as Workday and Windows
// tools export them (header lines such as Comment:, continuation lines
// ending in a backslash). Every key must be of a type SPEC §3 accepts:
// ssh-ed25519, ecdsa-sha2-nistp256/384/521, or ssh-rsa of at least 2048
// bits; otherwise the error wraps ErrKeyType. No key at all is an error.
func ParseKeys(data []byte) ([]PublicKey, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	lines := strings.Split(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n")
	var keys []PublicKey
	for i := 0; i < len(lines); i++ {
		line := strings.TrimSpace(lines[i])
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
			continue
		case strings.HasPrefix(line, "---- BEGIN SSH2 PUBLIC KEY"):
			k, next, err := parseRFC4716(lines, i+1)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", i+1, err)
			}
			keys = append(keys, k)
			i = next
		default:
			key, comment, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
			if err != nil {
				if slices.Contains(strings.Fields(line), ssh.InsecureKeyAlgoDSA) {
					// x/crypto no longer parses DSA keys; say what it is.
					return nil, fmt.Errorf("line %d: %w: %s (DSA)", i+1, ErrKeyType, ssh.InsecureKeyAlgoDSA)
				}
				return nil, fmt.Errorf("line %d: not a public key", i+1)
			}
			if err := checkKeyType(key); err != nil {
				return nil, fmt.Errorf("line %d: %w", i+1, err)
			}
			keys = append(keys, PublicKey{Key: key, Comment: comment})
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("no public key found")
	}
	return keys, nil
}

// parseRFC4716 reads an SSH2 public key block whose BEGIN line precedes
// lines[start]; it returns the key and the index of the END line.
func parseRFC4716(lines []string, start int) (PublicKey, int, error) {
	var (
		comment string
		body    strings.Builder
		inBody  bool
	)
	for i := start; i < len(lines); i++ {
		line := strings.TrimSpace(lines[i])
		if strings.HasPrefix(line, "---- END SSH2 PUBLIC KEY") {
			raw, err := base64.StdEncoding.DecodeString(body.String())
			if err != nil {
				return PublicKey{}, 0, errors.New("ssh2 public key: bad base64")
			}
			key, err := ssh.ParsePublicKey(raw)
			if err != nil {
				return PublicKey{}, 0, fmt.Errorf("ssh2 public key: %w", err)
			}
			if err := checkKeyType(key); err != nil {
				return PublicKey{}, 0, err
			}
			return PublicKey{Key: key, Comment: comment}, i, nil
		}
		if !inBody && strings.Contains(line, ":") {
			header := line
			for strings.HasSuffix(header, `\`) && i+1 < len(lines) {
				i++
				header = strings.TrimSuffix(header, `\`) + strings.TrimSpace(lines[i])
			}
			tag, value, _ := strings.Cut(header, ":")
			if strings.EqualFold(strings.TrimSpace(tag), "Comment") {
				value = strings.TrimSpace(value)
				if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
					value = value[1 : len(value)-1]
				}
				comment = value
			}
			continue
		}
		inBody = true
		body.WriteString(line)
	}
	return PublicKey{}, 0, errors.New("ssh2 public key: missing END line")
}

// checkKeyType enforces the SPEC §3 key types.
func checkKeyType(key ssh.PublicKey) error {
	switch key.Type() {
	case ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521:
		return nil
	case ssh.KeyAlgoRSA:
		ck, ok := key.(ssh.CryptoPublicKey)
		if !ok {
			return fmt.Errorf("%w: ssh-rsa", ErrKeyType)
		}
		rk, ok := ck.CryptoPublicKey().(*rsa.PublicKey)
		if !ok || rk.N.BitLen() < minRSABits {
			return fmt.Errorf("%w: ssh-rsa keys need at least %d bits", ErrKeyType, minRSABits)
		}
		return nil
	}
	return fmt.Errorf("%w: %s", ErrKeyType, key.Type())
}
