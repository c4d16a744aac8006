package analyzer

import (
	"context"
	"strings"
	"testing"
)

// ubi8Dockerfile has the shape of the Dockerfile Red Hat's build system
// (OSBS) leaves in root/buildinfo of the images it builds: the labels of
// the source Dockerfile, then the ones the build system adds in one line.
const ubi8Dockerfile = `FROM sha256:5c4d2a01d5b3e7f4c9e0a2f1b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6

# Red Hat's labels
LABEL maintainer="Red Hat, Inc."

LABEL com.redhat.component="ubi8-container" \
      name="ubi8" \
      version="8.3"

#label for EULA
LABEL com.redhat.license_terms="https://www.redhat.com/en/about/red-hat-end-user-license-agreements#UBI"

ENV container oci
ENV PATH /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

CMD ["/bin/bash"]

RUN rm -rf /var/log/*

LABEL "release"="227" "distribution-scope"="public" "vendor"="Red Hat, Inc." "build-date"="2020-12-10T01:59:40.343735" "architecture"="x86_64" "vcs-type"="git" "url"="https://access.redhat.com/containers/#/registry.access.redhat.com/ubi8/images/8.3-227"
`

func TestRedHatDockerfile(t *testing.T) {
	a := redHatDockerfile{}
	wantRequired(t, a, map[string]bool{
		"root/buildinfo/Dockerfile-ubi8-8.3-227":                       true,
		"root/buildinfo/Dockerfile-jboss-base-7-base-1.1-3":            true,
		"root/buildinfo/Dockerfile":                                    false,
		"root/buildinfo/content_manifests/ubi8-container-8.3-227.json": false,
		"root/buildinfo/sub/Dockerfile-ubi8-8.3-227":                   false,
		"app/root/buildinfo/Dockerfile-ubi8-8.3-227":                   false,
	})
	for _, tc := range []struct {
		name    string
		path    string // file name under root/buildinfo; Dockerfile-ubi8-8.3-227 when empty
		in      string
		want    string
		wantErr string
	}{
		{name: "ubi8", in: ubi8Dockerfile, want: "ubi8-container-8.3-227-x86_64"},
		// The version and release come from the file's name, as Trivy
		// takes them, even where the labels say otherwise.
		{name: "file name wins", path: "Dockerfile-jboss-base-7-base-1.1-3",
			in: "LABEL BZComponent=\"jboss-base-7-docker\" version=9 release=9 architecture=x86_64\n", want: "jboss-base-7-docker-1.1-3-x86_64"},
		{name: "labels when the name has none", path: "Dockerfile-ubi",
			in: "LABEL com.redhat.component=ubi9-container version=9.3 release=1361 architecture=aarch64\n", want: "ubi9-container-9.3-1361-aarch64"},
		{name: "legacy form and variables", in: "ARG ARCH=s390x\nENV COMP ubi8-minimal-container\nLABEL com.redhat.component ${COMP}\nLABEL architecture=\"$ARCH\" x='$COMP'\n",
			want: "ubi8-minimal-container-8.3-227-s390x"},
		{name: "escape directive", in: "# escape=`\nLABEL com.redhat.component=ubi8-container `\n  architecture=ppc64le\n", want: "ubi8-container-8.3-227-ppc64le"},
		{name: "crlf and comments inside a continuation", in: "LABEL com.redhat.component=ubi8-container \\\r\n# comment\r\n\r\n  architecture=x86_64\r\n", want: "ubi8-container-8.3-227-x86_64"},
		{name: "no component: not a Red Hat build", in: "FROM scratch\nLABEL architecture=x86_64\n"},
		{name: "no architecture", in: "LABEL com.redhat.component=ubi8-container\n"},
		{name: "no version", path: "Dockerfile-ubi", in: "LABEL com.redhat.component=c architecture=x86_64\n", wantErr: "give the version and release"},
		{name: "not an NVR", in: "LABEL com.redhat.component=\"ubi8 container\" architecture=x86_64\n", wantErr: "is not part of an NVR"},
		{name: "unterminated quote", in: "LABEL com.redhat.component=\"ubi8\n", wantErr: "unterminated double quote"},
		{name: "unterminated single quote", in: "LABEL a='b\n", wantErr: "unterminated single quote"},
		{name: "bad escape directive", in: "# escape=x\nLABEL a=b\n", wantErr: "escape directive"},
		{name: "not key=value", in: "LABEL a=b c\n", wantErr: `"c" is not key=value`},
		{name: "too large", in: strings.Repeat("#", maxBuildDockerfile+1), wantErr: "more than the 262144"},
		{name: "too many variables", in: func() string {
			var b strings.Builder
			for i := range maxDockerfileVars + 1 {
				b.WriteString("ENV v")
				b.WriteString(strings.Repeat("x", i%7+1))
				b.WriteString(string(rune('a'+i%26)) + string(rune('a'+i/26%26)) + "=1\n")
			}
			return b.String()
		}(), wantErr: "more than 512 ENV and ARG variables"},
		// A short file that names a long value many times would make
		// gigabytes; the substitutions are bounded.
		{name: "hostile: variable expansion bomb", in: "ENV X=" + strings.Repeat("x", maxDockerfileValue) + "\nLABEL " +
			strings.Repeat("a=\"$X$X\" ", 300) + "\n", wantErr: "variables expand to more than"},
		{name: "hostile: value too long", in: "LABEL a=" + strings.Repeat("v", maxDockerfileValue+1) + "\n", wantErr: "a value longer than 4096 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := tc.path
			if name == "" {
				name = "Dockerfile-ubi8-8.3-227"
			}
			res, err := a.Analyze(context.Background(), Input{Path: "root/buildinfo/" + name, Content: []byte(tc.in)})
			if !wantError(t, err, tc.wantErr) {
				return
			}
			var got string
			if res != nil {
				got = res.RedHatNVR
			}
			if got != tc.want {
				t.Errorf("NVR %q, want %q", got, tc.want)
			}
		})
	}
}

func FuzzRedHatDockerfile(f *testing.F) {
	f.Add([]byte("LABEL com.redhat.component=\"ubi8-container\" \\\n  architecture=x86_64 release=227\nENV A=$B\n"))
	f.Add([]byte("# escape=`\nARG X=1\nLABEL BZComponent ${X}`\n  x\nLABEL architecture='a' \"k\"=\"v\\\"$X\"\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := redHatDockerfile{}.Analyze(context.Background(), Input{Path: "root/buildinfo/Dockerfile-ubi8-8.3-227", Content: b})
		if err != nil || res == nil {
			return
		}
		parts := strings.Split(res.RedHatNVR, "-")
		if len(parts) < 4 || len(res.RedHatNVR) > 4*maxNVRPart+3 || !isNVRPart(res.RedHatNVR) {
			t.Fatalf("NVR %q", res.RedHatNVR)
		}
	})
}
