package secretbox

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSealOpen(t *testing.T) {
	b, src, err := Load("", filepath.Join(t.TempDir(), "key"))
	if err != nil || !strings.HasPrefix(src, "new file") {
		t.Fatalf("Load: %v %q", err, src)
	}
	sealed := b.Seal("whsec_abc")
	if strings.Contains(sealed, "whsec") || sealed == b.Seal("whsec_abc") {
		t.Fatalf("sealed %q is plain or not randomized", sealed)
	}
	if got, err := b.Open(sealed); err != nil || got != "whsec_abc" {
		t.Fatalf("Open: %q %v", got, err)
	}
	other, _, _ := Load(strings.Repeat("ab", KeySize), "")
	if _, err := other.Open(sealed); err != ErrOpen {
		t.Fatalf("another key opened it: %v", err)
	}
	if _, err := b.Open(sealed[:len(sealed)-2] + "AA"); err != ErrOpen {
		t.Fatalf("tampered value opened: %v", err)
	}
}

func TestLoadKeepsFileKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key")
	a, _, err := Load("", path)
	if err != nil {
		t.Fatal(err)
	}
	b, src, err := Load("", path)
	if err != nil || src != "file "+path {
		t.Fatalf("second Load: %v %q", err, src)
	}
	if got, err := b.Open(a.Seal("x")); err != nil || got != "x" {
		t.Fatalf("file key changed: %v", err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v", fi.Mode())
	}
	for _, bad := range []string{"short", strings.Repeat("z", 64)} {
		if _, _, err := Load(bad, ""); err == nil {
			t.Fatalf("Load(%q) accepted", bad)
		}
	}
}
