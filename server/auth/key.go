// Package auth authenticates requests with secret API keys: the key format,
// hashing, the verification cache and the HTTP middleware.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"hash/crc32"
	"math/big"
	"strings"
)

// Key format: "sk_rsv_" + 32 random base62 characters + a 6-character base62
// CRC32 of the random part. The checksum lets a mistyped or forged key be
// refused as malformed before any lookup, and lets secret scanners recognise
// ReserveKit keys.
const (
	Prefix       = "sk_rsv_"
	randomLen    = 32
	checksumLen  = 6
	SecretLen    = len(Prefix) + randomLen + checksumLen
	displayChars = 6
	base62       = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)

// NewSecret generates a fresh secret key from crypto/rand.
func NewSecret() string {
	var b strings.Builder
	b.Grow(SecretLen)
	b.WriteString(Prefix)
	random := make([]byte, randomLen)
	max := big.NewInt(int64(len(base62)))
	for i := range random {
		n, err := rand.Int(rand.Reader, max)
		if err != nil {
			panic("crypto/rand failed: " + err.Error())
		}
		random[i] = base62[n.Int64()]
	}
	b.Write(random)
	b.WriteString(checksum(random))
	return b.String()
}

// checksum encodes CRC32 of the random part in checksumLen base62 characters.
func checksum(random []byte) string {
	c := checksumOf(crc32.ChecksumIEEE(random))
	return string(c[:])
}

func checksumOf(n uint32) [checksumLen]byte {
	var out [checksumLen]byte
	for i := checksumLen - 1; i >= 0; i-- {
		out[i] = base62[n%62]
		n /= 62
	}
	return out
}

// WellFormed reports whether s has the key format with a valid checksum. It
// does not allocate: it runs on every request.
func WellFormed(s string) bool {
	if len(s) != SecretLen || !strings.HasPrefix(s, Prefix) {
		return false
	}
	var body [randomLen + checksumLen]byte
	copy(body[:], s[len(Prefix):])
	for _, ch := range body {
		if strings.IndexByte(base62, ch) < 0 {
			return false
		}
	}
	return checksumOf(crc32IEEE(body[:randomLen])) == [checksumLen]byte(body[randomLen:])
}

// crc32IEEE is crc32.ChecksumIEEE by table lookup: the library's version
// makes its argument escape to the heap, which would cost an allocation per
// request.
func crc32IEEE(p []byte) uint32 {
	crc := ^uint32(0)
	for _, b := range p {
		crc = crc32.IEEETable[byte(crc)^b] ^ (crc >> 8)
	}
	return ^crc
}

// Hash is what the database stores for a secret: hex SHA-256.
func Hash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// DisplayPrefix is the non-secret start of a key shown in lists.
func DisplayPrefix(secret string) string {
	return secret[:len(Prefix)+displayChars]
}
