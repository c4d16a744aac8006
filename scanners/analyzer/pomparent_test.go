package analyzer

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// testPom writes a small POM: coordinates, an optional parent (with its
// relativePath element when rel is not "-"), properties and
// dependencyManagement and dependencies as raw XML.
func testPom(gav, parentGAV, rel, props, managed, deps string) []byte {
	g, a, v := splitGAV(gav)
	s := "<project>\n  <modelVersion>4.0.0</modelVersion>\n"
	if parentGAV != "" {
		pg, pa, pv := splitGAV(parentGAV)
		s += fmt.Sprintf("  <parent><groupId>%s</groupId><artifactId>%s</artifactId><version>%s</version>", pg, pa, pv)
		if rel != "-" {
			s += "<relativePath>" + rel + "</relativePath>"
		}
		s += "</parent>\n"
	}
	if g != "" {
		s += "  <groupId>" + g + "</groupId>\n"
	}
	s += "  <artifactId>" + a + "</artifactId>\n"
	if v != "" {
		s += "  <version>" + v + "</version>\n"
	}
	s += "  <properties>" + props + "</properties>\n"
	s += "  <dependencyManagement><dependencies>" + managed + "</dependencies></dependencyManagement>\n"
	s += "  <dependencies>" + deps + "</dependencies>\n</project>\n"
	return []byte(s)
}

func splitGAV(gav string) (g, a, v string) {
	parts := strings.Split(gav, ":")
	return parts[0], parts[1], parts[2]
}

func dep(g, a, v string) string {
	s := "<dependency><groupId>" + g + "</groupId><artifactId>" + a + "</artifactId>"
	if v != "" {
		s += "<version>" + v + "</version>"
	}
	return s + "</dependency>"
}

// mavenFound lists "group:artifact@version path" of the Maven packages.
func mavenFound(inv *Inventory) []string {
	var out []string
	for _, p := range inv.Packages {
		if p.Type == TypeMaven {
			out = append(out, p.Name+"@"+p.Version+" "+p.Location.Path)
		}
	}
	sort.Strings(out)
	return out
}

// TestPomParent: a module's POM takes properties and managed versions
// from its parent in the image (../pom.xml by default, or relativePath),
// two levels up; its own properties override the parents' even in what
// they manage (Maven's inheritance, then interpolation); project.version
// is the module's (inherited from the parent here). A parent that is not
// the one named, a loop and what no parent defines stay warnings.
func TestPomParent(t *testing.T) {
	log4j := dep("org.apache.logging.log4j", "log4j-core", "${log4j2.version}")
	files := map[string][]byte{
		// grandparent: a property and a managed version
		"srv/shop/pom.xml": testPom("com.example:shop-root:7", "", "-",
			"<log4j2.version>2.14.1</log4j2.version>",
			dep("io.netty", "netty-codec-http", "4.1.60.Final"), ""),
		// parent: its own managed versions, one from a property the child overrides
		"srv/shop/services/pom.xml": testPom("com.example.shop:shop-parent:1.4.0", "com.example:shop-root:7", "-",
			"<jackson.version>2.12.3</jackson.version>",
			dep("com.fasterxml.jackson.core", "jackson-databind", "${jackson.version}")+dep("com.example.shop", "shop-core", "${project.version}"), ""),
		// module: inherits group and version
		"srv/shop/services/api/pom.xml": testPom(":shop-api:", "com.example.shop:shop-parent:1.4.0", "-",
			"<jackson.version>2.13.0</jackson.version>", "",
			log4j+dep("com.fasterxml.jackson.core", "jackson-databind", "")+dep("com.example.shop", "shop-core", "")+
				dep("io.netty", "netty-codec-http", "")+dep("com.google.guava", "guava", "${guava.version}")),
		// relativePath to a directory holding another project's POM
		"srv/shop/services/web/pom.xml": testPom("com.example.shop:shop-web:1.4.0", "com.example.shop:shop-parent:1.4.0", "../../other", "", "", log4j),
		"srv/shop/other/pom.xml":        testPom("com.example:other:1", "", "-", "<log4j2.version>2.17.1</log4j2.version>", "", ""),
		// a loop
		"srv/loop/a/pom.xml": testPom("x:a:1", "x:b:1", "../b/pom.xml", "", "", log4j),
		"srv/loop/b/pom.xml": testPom("x:b:1", "x:a:1", "../a/pom.xml", "", "", ""),
		// <relativePath/>: no local lookup, as before
		"srv/boot/pom.xml": testPom("com.example:boot:1", "com.example:shop-root:7", "", "", "", log4j),
		"srv/pom.xml":      testPom("com.example:shop-root:7", "", "-", "<log4j2.version>2.14.1</log4j2.version>", "", ""),
	}
	inv := runLockfilesOnFiles(t, files, false)
	want := []string{
		"com.example.shop:shop-core@1.4.0 srv/shop/services/api/pom.xml",
		"com.fasterxml.jackson.core:jackson-databind@2.13.0 srv/shop/services/api/pom.xml",
		"io.netty:netty-codec-http@4.1.60.Final srv/shop/services/api/pom.xml",
		"org.apache.logging.log4j:log4j-core@2.14.1 srv/shop/services/api/pom.xml",
	}
	if got := mavenFound(inv); !reflect.DeepEqual(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	for _, w := range []string{
		`srv/shop/services/api/pom.xml: dependencies/dependency[5] (com.google.guava:guava): version "${guava.version}" uses a property not defined`,
		`srv/shop/services/web/pom.xml: dependencies/dependency[1] (org.apache.logging.log4j:log4j-core): version "${log4j2.version}"`,
		"(srv/shop/other/pom.xml is com.example:other:1, not the parent com.example.shop:shop-parent:1.4.0)",
		"srv/loop/a/pom.xml: dependencies/dependency[1]",
		"(the parent chain loops at srv/loop/a/pom.xml)",
		"srv/boot/pom.xml: dependencies/dependency[1]",
	} {
		found := false
		for _, iw := range inv.Warnings {
			found = found || strings.Contains(iw, w)
		}
		if !found {
			t.Errorf("no warning %q in\n%q", w, inv.Warnings)
		}
	}
	if len(inv.Warnings) != 4 {
		t.Errorf("%d warnings, want 4: %q", len(inv.Warnings), inv.Warnings)
	}
}

// TestPomParentDepth: a parent chain longer than maxPomParents is cut,
// with a warning.
func TestPomParentDepth(t *testing.T) {
	files := map[string][]byte{}
	dir := "srv"
	var dirs []string
	for i := 0; i <= maxPomParents+1; i++ {
		dir += fmt.Sprintf("/m%d", i)
		dirs = append(dirs, dir)
	}
	for i, d := range dirs {
		gav := fmt.Sprintf("x:m%d:1", i)
		props := ""
		if i == 0 {
			props = "<log4j2.version>2.14.1</log4j2.version>"
		}
		parent := ""
		if i > 0 {
			parent = fmt.Sprintf("x:m%d:1", i-1)
		}
		deps := ""
		if i == len(dirs)-1 || i == maxPomParents {
			deps = dep("org.apache.logging.log4j", "log4j-core", "${log4j2.version}")
		}
		files[d+"/pom.xml"] = testPom(gav, parent, "-", props, "", deps)
	}
	inv := runLockfilesOnFiles(t, files, false)
	// m8 is 8 parents below m0 and resolves; m9 is 9 below and does not.
	want := []string{"org.apache.logging.log4j:log4j-core@2.14.1 " + dirs[maxPomParents] + "/pom.xml"}
	if got := mavenFound(inv); !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if len(inv.Warnings) != 1 || !strings.Contains(inv.Warnings[0], fmt.Sprintf("more than %d parents", maxPomParents)) {
		t.Errorf("warnings %q", inv.Warnings)
	}
}
