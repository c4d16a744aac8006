package analyzer

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestAPKRepositories reads the release of /etc/apk/repositories as Trivy's
// apk-repo analyzer does: the newest release named (edge above all, 3.10
// above 3.9), tagged repositories included; other distributions' files are
// not Alpine's, and a file mixing distributions is refused.
func TestAPKRepositories(t *testing.T) {
	const cdn = "https://dl-cdn.alpinelinux.org/alpine/"
	tests := []struct {
		name, content string
		want          string // "" with wantErr false: not applicable
		wantErr       string
	}{
		{"one release", cdn + "v3.19/main\n" + cdn + "v3.19/community\n", "3.19", ""},
		{"the newest", cdn + "v3.18/main\n" + cdn + "v3.19/main\n" + cdn + "v3.17/community\n", "3.19", ""},
		{"numbers, not text", cdn + "v3.10/main\n" + cdn + "v3.9/main\n", "3.10", ""},
		{"edge wins", cdn + "edge/main\n" + cdn + "v3.20/main\n", "edge", ""},
		{"tagged edge", cdn + "v3.19/main\n@testing " + cdn + "edge/testing\n", "edge", ""},
		{"mirror with a port, comments, blanks", "# mirrors\n\nhttp://mirror.example:8080/alpine/v3.20/main\n  \n", "3.20", ""},
		{"latest-stable names no bucket", cdn + "latest-stable/main\n", "", ""},
		{"a local repository only", "/media/cdrom/apks\n", "", ""},
		{"another distribution", "https://mirror.postmarketos.org/postmarketos/v23.12\n", "", ""},
		{"another distribution's release path", "https://mirror.postmarketos.org/postmarketos/v23.12/\n", "", ""},
		{"mixed distributions", cdn + "v3.19/main\nhttps://mirror.postmarketos.org/postmarketos/v23.12/\n", "", "mixes distributions: alpine and postmarketos"},
		{"empty", "", "", ""},
	}
	a := apkRepositories{}
	if !a.Required("etc/apk/repositories", nil) || a.Required("etc/apk/world", nil) {
		t.Fatal("Required: want etc/apk/repositories only")
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := a.Analyze(context.Background(), Input{Path: pathAPKRepositories, Content: []byte(tt.content)})
			switch {
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
			case tt.want == "":
				if !errors.Is(err, ErrNotApplicable) {
					t.Fatalf("result %+v, err %v; want ErrNotApplicable", res, err)
				}
			case err != nil:
				t.Fatal(err)
			case res.OS == nil || res.OS.Family != apkRepositoryFamily || res.OS.Name != tt.want:
				t.Fatalf("OS %+v, want the repositories' release %q", res.OS, tt.want)
			}
		})
	}
}

func TestNewerAlpineRelease(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want bool
	}{
		{"3.19", "", true}, {"3.19", "3.18", true}, {"3.18", "3.19", false}, {"3.10", "3.9", true},
		{"3.19.1", "3.19", true}, {"3.19", "3.19", false}, {"edge", "3.20", true}, {"3.20", "edge", false},
		{"edge", "edge", false}, {"latest-stable", "", false}, {"3.20", "latest-stable", true}, {"99999999999.1", "", false},
	} {
		if got := newerAlpineRelease(tt.a, tt.b); got != tt.want {
			t.Errorf("newerAlpineRelease(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}
