// Package secretbox seals secrets the server must read back (webhook signing
// secrets) with AES-256-GCM, so the database never holds them in plain text.
package secretbox

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
)

// KeySize is the key length in bytes (AES-256).
const KeySize = 32

// Box seals and opens secrets with one key.
type Box struct{ aead cipher.AEAD }

// New returns a box for a 32-byte key.
func New(key []byte) (*Box, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("secret key must be %d bytes, got %d", KeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Box{aead: aead}, nil
}

// Load returns the box for encoded (64 hex characters or base64 of 32
// bytes) when it is set; otherwise the key kept in the file at path,
// created with a random key (mode 0600) when missing. source says which,
// for the log (never the key).
func Load(encoded, path string) (box *Box, source string, err error) {
	if encoded = strings.TrimSpace(encoded); encoded != "" {
		key, err := decode(encoded)
		if err != nil {
			return nil, "", err
		}
		b, err := New(key)
		return b, "environment", err
	}
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		key := make([]byte, KeySize)
		_, _ = rand.Read(key)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, "", fmt.Errorf("create secret key file: %w", err)
		}
		if _, err := f.WriteString(hex.EncodeToString(key) + "\n"); err != nil {
			f.Close()
			return nil, "", fmt.Errorf("write secret key file: %w", err)
		}
		if err := f.Close(); err != nil {
			return nil, "", err
		}
		b, err := New(key)
		return b, "new file " + path, err
	}
	if err != nil {
		return nil, "", fmt.Errorf("read secret key file: %w", err)
	}
	key, err := decode(strings.TrimSpace(string(raw)))
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", path, err)
	}
	b, err := New(key)
	return b, "file " + path, err
}

func decode(s string) ([]byte, error) {
	if k, err := hex.DecodeString(s); err == nil && len(k) == KeySize {
		return k, nil
	}
	if k, err := base64.StdEncoding.DecodeString(s); err == nil && len(k) == KeySize {
		return k, nil
	}
	return nil, fmt.Errorf("secret key must be %d bytes as 64 hex characters or base64", KeySize)
}

// Seal encrypts plain: base64 of nonce and ciphertext.
func (b *Box) Seal(plain string) string {
	nonce := make([]byte, b.aead.NonceSize())
	_, _ = rand.Read(nonce)
	return base64.RawStdEncoding.EncodeToString(b.aead.Seal(nonce, nonce, []byte(plain), nil))
}

// ErrOpen means a sealed value is corrupt or was sealed with another key.
var ErrOpen = errors.New("secretbox: cannot open the sealed secret (wrong key or corrupt value)")

// Open decrypts what Seal returned.
func (b *Box) Open(sealed string) (string, error) {
	raw, err := base64.RawStdEncoding.DecodeString(sealed)
	if err != nil || len(raw) < b.aead.NonceSize() {
		return "", ErrOpen
	}
	n := b.aead.NonceSize()
	plain, err := b.aead.Open(nil, raw[:n], raw[n:], nil)
	if err != nil {
		return "", ErrOpen
	}
	return string(plain), nil
}
