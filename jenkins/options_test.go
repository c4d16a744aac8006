package jenkins_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/taskguard/taskguard/cli/clitest"
	"github.com/taskguard/taskguard/console/fargate/fargatetest"
	"github.com/taskguard/taskguard/scanners/report"
	"github.com/taskguard/taskguard/scanners/scantest"
)

// The glob of the web container's image in testdata/taskdef/multi-container.json.
const webImageGlob = "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop/web@*"

// optionScenarios prove that the options the GitHub Action has (lockfiles,
// includeDevDeps, sbom, layerCache, include, exclude, skipImage,
// failClosed, defenderPlatforms) reach taskguard and have their effect.
func optionScenarios(t *testing.T, f *fixture) []scenario {
	t.Helper()
	tmp := t.TempDir()
	// An app whose yarn.lock holds minimist 1.2.5 (CVE-2021-44906 in the
	// corpus): a production dependency in prod.tar, a development-only one
	// in dev.tar.
	yarn := map[string]string{
		"etc/os-release":      "ID=debian\nVERSION_ID=\"12\"\n",
		"var/lib/dpkg/status": "",
		"srv/shop/yarn.lock":  "# yarn lockfile v1\n\n\nminimist@^1.2.5:\n  version \"1.2.5\"\n",
	}
	prod := writeImageFiles(t, filepath.Join(tmp, "prod.tar"), "registry.example.com/shop/yarn:1", yarn)
	yarn["srv/shop/package.json"] = `{"name":"shop","devDependencies":{"minimist":"^1.2.5"}}`
	dev := writeImageFiles(t, filepath.Join(tmp, "dev.tar"), "registry.example.com/shop/yarn:2", yarn)

	multi, err := os.ReadFile(filepath.Join(f.root, "testdata/taskdef/multi-container.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(multi), `"cpuArchitecture": "X86_64"`) {
		t.Fatal("multi-container.json no longer runs on X86_64: the ARM64 copy below would be the same task")
	}
	arm := strings.Replace(string(multi), `"cpuArchitecture": "X86_64"`, `"cpuArchitecture": "ARM64"`, 1)
	taskFiles := map[string]string{"multi.json": string(multi), "arm.json": arm}
	db := "cacheDir: env.TASKGUARD_CACHE_DIR, skipDbUpdate: true"

	// A registry that answers the stuck image's manifest and config, then
	// never sends its layer's body; its other image is served as usual.
	reg := clitest.StartRegistry(t)
	goodRef := reg.Push(t, "shop/web:1.4", registryImage(t, map[string]string{
		"etc/os-release": "ID=debian\nVERSION_ID=\"12\"\n", "var/lib/dpkg/status": "",
		"app/node_modules/lodash/package.json": `{"name":"lodash","version":"4.17.20"}`,
	}))
	stuck := registryImage(t, map[string]string{"etc/os-release": "ID=debian\nVERSION_ID=\"12\"\n", "app/stuck.txt": "never sent"})
	stuckRef := reg.Push(t, "shop/stuck:1", stuck)
	reg.StallLayers(t, stuck)
	offline := "consoleAddr: 'console.example.com:8083', agentTokenSecret: '" + agentSecretARN + "'"

	// For taskguardPublish and taskguardProtectTask's timeout: a console
	// that takes requests and never answers, an image whose entrypoint
	// taskguard task protect reads, and a repository whose manifests never
	// come.
	stallingConsole, consoleStalls := stallingServer(t)
	entry, err := mutate.Config(registryImage(t, map[string]string{"etc/os-release": "ID=debian\nVERSION_ID=\"12\"\n"}),
		v1.Config{Entrypoint: []string{"/app/run"}})
	if err != nil {
		t.Fatal(err)
	}
	entryRef := reg.Push(t, "shop/entry:1", entry)
	reg.StallManifests("shop/stuck-entry")
	entryTask := func(image string) string {
		return `{"family": "reports", "networkMode": "awsvpc", "requiresCompatibilities": ["FARGATE"], "cpu": "256", "memory": "512",
  "containerDefinitions": [{"name": "reports", "image": "` + image + `", "essential": true}]}`
	}

	return []scenario{
		{
			name: "timeout reaches taskguard ci: a layer that never comes fails the stage and leaves no report, the other image passes",
			jenkinsfile: `node {
    stage('other image') { taskguardScan(image: env.GOOD_IMAGE, ` + db + `, timeout: '2s', junit: 'r/good.xml', json: 'r/good.json') }
    stage('refusals') {
        for (Closure step : [
            { taskguardScan(image: env.GOOD_IMAGE, timeout: 'soon') },
            { taskguardScan(image: env.GOOD_IMAGE, timeout: 15) },
        ]) {
            try {
                step()
            } catch (e) {
                echo "refused: ${e.message}"
            }
        }
    }
    stage('stalled layer') { taskguardScan(image: env.STUCK_IMAGE, ` + db + `, timeout: '2s', junit: 'r/stuck.xml', json: 'r/stuck.json') }
}`,
			// What an earlier build left: reports that say passed.
			files: map[string]string{
				"r/stuck.xml":  `<testsuites name="taskguard" tests="1" failures="0"></testsuites>`,
				"r/stuck.json": `{"result":"passed"}`,
			},
			env: map[string]string{"TASKGUARD_CACHE_DIR": f.db, "GOOD_IMAGE": goodRef, "STUCK_IMAGE": stuckRef},
			check: func(t *testing.T, b *buildResult) {
				wantResult(t, b, "FAILURE")
				wantStages(t, b, "other image: SUCCESS", "refusals: SUCCESS", "stalled layer: FAILURE")
				for _, report := range []string{"'r/good.json'", "'r/stuck.json'"} {
					if s := findSh(t, b, report)["script"].(string); !strings.Contains(s, "'--timeout' '2s'") {
						t.Errorf("taskguard ci lacks --timeout 2s:\n%s", s)
					}
				}
				want := "taskguard could not run (exit 2) on " + stuckRef + ": ci: gave up after 2s (--timeout): "
				if !strings.HasPrefix(b.Error, want) || !strings.Contains(b.Error, "context deadline exceeded") || strings.Contains(b.Error, "did not stop within") {
					t.Errorf("error %q, want %q… context deadline exceeded", b.Error, want)
				}
				if reg.Stalled() == 0 {
					t.Error("no request to the registry stalled: the stage failed for another reason")
				}
				wantArchived(t, b, "r/good.xml", "r/good.json")
				for _, stale := range []string{"r/stuck.xml", "r/stuck.json"} {
					if _, err := os.Stat(filepath.Join(b.workspace, stale)); !os.IsNotExist(err) {
						t.Errorf("%s of an earlier build is still in the workspace (stat: %v)", stale, err)
					}
					if slices.Contains(b.Archived, stale) {
						t.Errorf("%s was archived by a run that gave up", stale)
					}
				}
				for _, c := range b.calls("junit") {
					if c["testResults"] == "r/stuck.xml" {
						t.Errorf("a run that gave up published a JUnit report: %v", c)
					}
				}
				const duration = "refused: taskguardScan: parameter 'timeout' must be a duration such as '10m' or '1h30m' (0: no limit), not "
				for _, want := range []string{duration + "'soon'", duration + "'15'"} {
					if !strings.Contains(b.Log, want) {
						t.Errorf("log lacks %q", want)
					}
				}
			},
		},
		{
			name: "timeout reaches taskguardPublish and taskguardProtectTask: a console or registry that never answers fails the step by name",
			jenkinsfile: `node {
    stage('under the bound') {
        taskguardPublish(json: 'r.json', consoleUrl: env.CONSOLE_URL, credentialsId: 'ci', consoleInsecure: true, timeout: '1m')
        taskguardProtectTask(taskDefinition: 'entry.json', extractEntrypoint: true, protectedTaskOutput: 'out/entry.json', timeout: '1m')
    }
    stage('stalls and refusals') {
        for (Closure step : [
            { taskguardProtectTask(taskDefinition: 'entry.json', consoleUrl: env.STALL_URL, credentialsId: 'manager', timeout: '2s') },
            { taskguardProtectTask(taskDefinition: 'stuck.json', extractEntrypoint: true, protectedTaskOutput: 'out/stuck.json', timeout: '2s') },
            { taskguardPublish(json: 'r.json', consoleUrl: env.CONSOLE_URL, credentialsId: 'ci', timeout: 'soon') },
            { taskguardProtectTask(taskDefinition: 'entry.json', timeout: 15) },
        ]) {
            try {
                step()
            } catch (e) {
                echo "refused: ${e.message}"
            }
        }
    }
    stage('publish to a console that never answers') {
        taskguardPublish(json: 'r.json', consoleUrl: env.STALL_URL, credentialsId: 'ci', timeout: '1500ms')
    }
}`,
			files: map[string]string{
				"r.json":     publishableReport("registry.example.com/jenkins/timeout:1"),
				"entry.json": entryTask(entryRef), "stuck.json": entryTask(reg.Host + "/shop/stuck-entry:1"),
			},
			env: map[string]string{"CONSOLE_URL": f.consoleURL, "STALL_URL": stallingConsole},
			check: func(t *testing.T, b *buildResult) {
				wantResult(t, b, "FAILURE")
				wantStages(t, b, "under the bound: SUCCESS", "stalls and refusals: SUCCESS", "publish to a console that never answers: FAILURE")
				if !consoleHasScan(t, f, "registry.example.com/jenkins/timeout:1", "blocked") {
					t.Error("the report published under the bound is not in the console")
				}
				if s := findSh(t, b, "'--extract-entrypoint'")["script"].(string); !strings.Contains(s, "'--extract-entrypoint' '--timeout' '1m'") {
					t.Errorf("taskguard task protect lacks --timeout 1m:\n%s", s)
				}
				if !strings.Contains(string(b.archived(t, "out/entry.json")), `"/app/run"`) {
					t.Error("the protected task does not start the image's entrypoint")
				}
				env := ""
				for _, c := range b.calls("withEnv") {
					env += fmt.Sprint(c["overrides"])
				}
				for _, want := range []string{"TG_MAX_TIME=60]", "TG_MAX_TIME=2]", "TG_MAX_TIME=1.5]"} {
					if !strings.Contains(env, want) {
						t.Errorf("withEnv lacks %s: %s", want, env)
					}
				}
				const console = "the console at " // + the stalling console's URL
				wantError := "taskguardPublish: gave up after 1500ms (timeout): " + console + stallingConsole + " did not answer in time (curl exit 28)"
				if b.Error != wantError {
					t.Errorf("error %q, want %q", b.Error, wantError)
				}
				const duration = "parameter 'timeout' must be a duration such as '10m' or '1h30m' (0: no limit), not "
				for _, want := range []string{
					"refused: taskguardProtectTask: gave up after 2s (timeout): " + console + stallingConsole + " did not answer in time (curl exit 28)",
					"task protect: gave up after 2s (--timeout): ",
					"/shop/stuck-entry:1",
					"refused: taskguardPublish: " + duration + "'soon'",
					"refused: taskguardProtectTask: " + duration + "'15'",
				} {
					if !strings.Contains(b.Log, want) {
						t.Errorf("log lacks %q", want)
					}
				}
				if consoleStalls() < 2 {
					t.Errorf("%d requests reached the stalling console, want 2: the steps failed for another reason", consoleStalls())
				}
				if reg.Stalled() == 0 {
					t.Error("no request to the registry stalled")
				}
			},
		},
		{
			name: "lockfiles and includeDevDeps: a dev-only vulnerable package is reported only with includeDevDeps",
			jenkinsfile: `node {
    stage('installed packages') { taskguardScan(input: 'prod.tar', ` + db + `, failBuild: false, json: 'r/plain.json') }
    stage('lockfiles') { taskguardScan(input: 'prod.tar', ` + db + `, failBuild: false, json: 'r/lock.json', lockfiles: true) }
    stage('dev left out') { taskguardScan(input: 'dev.tar', ` + db + `, failBuild: false, json: 'r/dev.json', lockfiles: 'true') }
    stage('dev included') {
        taskguardScan(input: 'dev.tar', ` + db + `, failBuild: false, json: 'r/devinc.json', lockfiles: true, includeDevDeps: 'true')
    }
    stage('includeDevDeps alone') { taskguardScan(input: 'dev.tar', ` + db + `, includeDevDeps: true) }
}`,
			files: map[string]string{"prod.tar": "@" + prod, "dev.tar": "@" + dev},
			env:   map[string]string{"TASKGUARD_CACHE_DIR": f.db},
			check: func(t *testing.T, b *buildResult) {
				wantResult(t, b, "FAILURE")
				wantStages(t, b, "installed packages: SUCCESS", "lockfiles: SUCCESS", "dev left out: SUCCESS", "dev included: SUCCESS", "includeDevDeps alone: FAILURE")
				for _, tt := range []struct {
					report         string
					lockfiles, dev bool
					findings       int
				}{
					{"r/plain.json", false, false, 0},
					{"r/lock.json", true, false, 1},
					{"r/dev.json", true, false, 0},
					{"r/devinc.json", true, true, 1},
				} {
					script := findSh(t, b, "'"+tt.report+"'")["script"].(string)
					if strings.Contains(script, "'--lockfiles'") != tt.lockfiles || strings.Contains(script, "'--include-dev-deps'") != tt.dev {
						t.Errorf("%s: --lockfiles %v and --include-dev-deps %v wanted:\n%s", tt.report, tt.lockfiles, tt.dev, script)
					}
					if got := minimistFindings(t, b, tt.report); got != tt.findings {
						t.Errorf("%s: %d findings of minimist in yarn.lock, want %d", tt.report, got, tt.findings)
					}
				}
				if b.Error != "taskguardScan: includeDevDeps needs lockfiles: true (it adds the lock files' development-only packages)" {
					t.Errorf("error %q", b.Error)
				}
				if n := len(b.calls("sh")); n != 4 {
					t.Errorf("%d sh calls, want 4: includeDevDeps without lockfiles must stop before taskguard runs", n)
				}
			},
		},
		{
			name: "sbom is written, returned and archived; layerCache false reads every layer",
			jenkinsfile: `node {
    stage('copy the DB') {
        sh 'for d in cached uncached; do cp -R "$TASKGUARD_CACHE_DIR" "$d" && rm -rf "$d/layers"; done'
    }
    stage('cached') {
        Map r = taskguardScan(input: 'image.tar', cacheDir: 'cached', skipDbUpdate: true, json: 'cached.json', sbom: 'reports/image.spdx.json')
        echo "sbom: ${r.sbom}"
    }
    stage('uncached') {
        Map r = taskguardScan(input: 'image.tar', cacheDir: 'uncached', skipDbUpdate: true, json: 'uncached.json', sbom: 'reports/image.cdx.json',
                              layerCache: 'false')
        echo "sbom: ${r.sbom}"
    }
    stage('sbom of no image') { taskguardScan(taskDefinition: 'multi.json', sbom: 'task.cdx.json') }
}`,
			files: merge(taskFiles, map[string]string{"image.tar": "@" + f.imageTar}),
			env:   map[string]string{"TASKGUARD_CACHE_DIR": f.db},
			check: func(t *testing.T, b *buildResult) {
				wantResult(t, b, "FAILURE")
				wantStages(t, b, "copy the DB: SUCCESS", "cached: SUCCESS", "uncached: SUCCESS", "sbom of no image: FAILURE")
				cached := findSh(t, b, "'cached.json'")["script"].(string)
				uncached := findSh(t, b, "'uncached.json'")["script"].(string)
				if !strings.Contains(cached, "'--sbom' 'reports/image.spdx.json'") || strings.Contains(cached, "--no-cache") {
					t.Errorf("layerCache default: --sbom and no --no-cache wanted:\n%s", cached)
				}
				if !strings.Contains(uncached, "'--sbom' 'reports/image.cdx.json'") || !strings.Contains(uncached, "'--no-cache'") {
					t.Errorf("layerCache 'false': --sbom and --no-cache wanted:\n%s", uncached)
				}
				if n := layerEntries(t, filepath.Join(b.workspace, "cached", "layers")); n == 0 {
					t.Error("the scan with the layer cache left no entry in cacheDir/layers")
				}
				if n := layerEntries(t, filepath.Join(b.workspace, "uncached", "layers")); n != 0 {
					t.Errorf("the scan with layerCache 'false' left %d entries in cacheDir/layers", n)
				}
				for _, tt := range []struct{ path, format string }{
					{"reports/image.spdx.json", `"spdxVersion": "SPDX-2.3"`},
					{"reports/image.cdx.json", `"bomFormat": "CycloneDX"`},
				} {
					if !strings.Contains(b.Log, "sbom: "+tt.path) {
						t.Errorf("the step did not return sbom %s:\n%s", tt.path, b.Log)
					}
					wantArchived(t, b, tt.path)
					sbom := string(b.archived(t, tt.path))
					if !strings.Contains(compactJSON(sbom), strings.ReplaceAll(tt.format, " ", "")) || !strings.Contains(sbom, "lodash") || !strings.Contains(sbom, "4.17.20") {
						t.Errorf("%s is not a %s SBOM naming lodash 4.17.20:\n%.600s", tt.path, tt.format, sbom)
					}
				}
				if b.Error != "taskguardScan: sbom needs image or input (the SBOM lists the scanned image's packages)" {
					t.Errorf("error %q", b.Error)
				}
			},
		},
		{
			name: "taskguardScan protect options: include, exclude, skipImage, failClosed, defenderPlatforms",
			jenkinsfile: `node {
    stage('arm64') {
        taskguardScan(taskDefinition: 'arm.json', protectedTaskOutput: 'arm-out.json', ` + db + `, ` + offline + `,
                      include: ['log_router'], exclude: 'worker', failClosed: true, defenderPlatforms: 'linux/amd64, linux/arm64')
    }
    stage('skip image') {
        taskguardScan(taskDefinition: 'multi.json', protectedTaskOutput: 'skip-out.json', ` + db + `, ` + offline + `,
                      skipImage: "` + webImageGlob + `\n")
    }
    stage('refusals') {
        for (Map bad : [[include: 'log_router'], [failClosed: 'true', exclude: ['web']], [protectedTaskOutput: 'out/x.json', include: [7]],
                        [protectedTaskOutput: 'out/x.json', skipImage: [glob: 'x']], [protectedTaskOutput: 'out/x.json', failClosed: 'yes']]) {
            try {
                taskguardScan([taskDefinition: 'multi.json'] + bad)
            } catch (e) {
                echo "refused: ${e.message}"
            }
        }
    }
    stage('arm64 without defenderPlatforms') {
        taskguardScan(taskDefinition: 'arm.json', protectedTaskOutput: 'none-out.json', ` + db + `, ` + offline + `)
    }
}`,
			files: taskFiles,
			env:   map[string]string{"TASKGUARD_CACHE_DIR": f.db},
			check: func(t *testing.T, b *buildResult) {
				wantResult(t, b, "FAILURE")
				wantStages(t, b, "arm64: SUCCESS", "skip image: SUCCESS", "refusals: SUCCESS", "arm64 without defenderPlatforms: FAILURE")
				armSh := findSh(t, b, "'arm-out.json'")["script"].(string)
				for _, want := range []string{"'--include' 'log_router'", "'--exclude' 'worker'", "'--fail-closed'", "'--defender-platforms' 'linux/amd64' '--defender-platforms' 'linux/arm64'"} {
					if !strings.Contains(armSh, want) {
						t.Errorf("taskguard ci lacks %s:\n%s", want, armSh)
					}
				}
				if s := findSh(t, b, "'skip-out.json'")["script"].(string); !strings.Contains(s, "'--skip-image' '"+webImageGlob+"'") || strings.Contains(s, "--fail-closed") {
					t.Errorf("taskguard ci: --skip-image and no --fail-closed wanted:\n%s", s)
				}
				wantContainers(t, b.archived(t, "arm-out.json"), map[string]string{"web": "fail-closed", "log_router": "fail-closed", "worker": "as is"})
				wantContainers(t, b.archived(t, "skip-out.json"), map[string]string{"web": "as is", "worker": "protected", "log_router": "as is"})
				for _, want := range []string{
					"refused: taskguardScan: include shape the protected task definition: give protectedTaskOutput (and taskDefinition) too",
					"refused: taskguardScan: exclude, failClosed shape the protected task definition: give protectedTaskOutput (and taskDefinition) too",
					"refused: taskguardScan: parameter 'include' must be a list of strings or one string of comma- or newline-separated items, not a list holding Integer",
					"refused: taskguardScan: parameter 'skipImage' must be a list of strings or one string of comma- or newline-separated items, not [glob:x] (LinkedHashMap)",
					"refused: taskguardScan: parameter 'failClosed' must be true or false (a boolean, or the string 'true' or 'false'), not 'yes'",
				} {
					if !strings.Contains(b.Log, want) {
						t.Errorf("log lacks %q:\n%s", want, b.Log)
					}
				}
				if !strings.Contains(b.Error, "taskguard could not run (exit 2) on arm.json") || !strings.Contains(b.Error, "defenderPlatforms=linux/amd64,linux/arm64") {
					t.Errorf("error %q: want taskguard's refusal of an ARM64 task without an ARM64 defender", b.Error)
				}
				if len(b.calls("sh")) != 3 {
					t.Errorf("%d sh calls, want 3 (the refused calls must not run taskguard)", len(b.calls("sh")))
				}
			},
		},
		{
			name: "taskguardProtectTask protect options through the console and offline",
			jenkinsfile: `node {
    stage('console') {
        taskguardProtectTask(taskDefinition: 'arm.json', consoleUrl: env.CONSOLE_URL, credentialsId: 'manager', consoleCa: env.CONSOLE_CA,
                             agentTokenSecret: '` + agentSecretARN + `', protectedTaskOutput: 'out/console.json',
                             include: 'log_router', exclude: ['worker'], skipImage: ['` + webImageGlob + `'], failClosed: 'true',
                             defenderPlatforms: ['linux/amd64', 'linux/arm64'])
    }
    stage('offline') {
        taskguardProtectTask(taskDefinition: 'arm.json', ` + offline + `, protectedTaskOutput: 'out/offline.json',
                             include: 'log_router', skipImage: '` + webImageGlob + `', failClosed: true, defenderPlatforms: 'linux/arm64')
    }
    stage('refusals') {
        try {
            taskguardProtectTask(taskDefinition: 'arm.json', consoleUrl: env.CONSOLE_URL, credentialsId: 'manager', consoleCa: env.CONSOLE_CA,
                                 agentTokenSecret: '` + agentSecretARN + `', protectedTaskOutput: 'out/refused.json')
        } catch (e) {
            echo "refused: ${e.message}"
        }
        try {
            taskguardProtectTask(taskDefinition: 'multi.json', exclude: 42)
        } catch (e) {
            echo "refused: ${e.message}"
        }
    }
    stage('offline arm64 without defenderPlatforms') {
        taskguardProtectTask(taskDefinition: 'arm.json', ` + offline + `, protectedTaskOutput: 'none-out.json')
    }
}`,
			files: taskFiles,
			env:   map[string]string{"CONSOLE_URL": f.consoleURL, "CONSOLE_CA": f.consoleCA},
			check: func(t *testing.T, b *buildResult) {
				wantResult(t, b, "FAILURE")
				wantStages(t, b, "console: SUCCESS", "offline: SUCCESS", "refusals: SUCCESS", "offline arm64 without defenderPlatforms: FAILURE")
				env := ""
				for _, c := range b.calls("withEnv") {
					env += fmt.Sprint(c["overrides"])
				}
				const query = "&include=log_router&exclude=worker&skipImage=123456789012.dkr.ecr.us-east-1.amazonaws.com%2Fshop%2Fweb%40*" +
					"&defenderPlatforms=linux%2Famd64&defenderPlatforms=linux%2Farm64&failClosed=true"
				if !strings.Contains(env, query) {
					t.Errorf("the console URL lacks %s: %s", query, env)
				}
				var protectScripts []string
				for _, c := range b.calls("sh") {
					if s := c["script"].(string); strings.Contains(s, "task protect") {
						protectScripts = append(protectScripts, s)
					}
				}
				if len(protectScripts) < 1 || !strings.Contains(protectScripts[0], "'--include' 'log_router' '--skip-image' '"+webImageGlob+"' '--defender-platforms' 'linux/arm64' '--fail-closed'") {
					t.Errorf("taskguard task protect flags: %v", protectScripts)
				}
				wantContainers(t, b.archived(t, "out/console.json"), map[string]string{"web": "as is", "worker": "as is", "log_router": "fail-closed"})
				wantContainers(t, b.archived(t, "out/offline.json"), map[string]string{"web": "as is", "worker": "fail-closed", "log_router": "fail-closed"})
				for _, want := range []string{
					"refused: taskguardProtectTask: the console answered HTTP 400: ",
					"defenderPlatforms=linux/amd64,linux/arm64",
					"refused: taskguardProtectTask: parameter 'exclude' must be a list of strings or one string of comma- or newline-separated items, not 42 (Integer)",
				} {
					if !strings.Contains(b.Log, want) {
						t.Errorf("log lacks %q:\n%s", want, b.Log)
					}
				}
				if _, err := os.Stat(filepath.Join(b.workspace, "out/refused.json")); err == nil {
					t.Error("a refused protection left out/refused.json behind")
				}
				if !strings.Contains(b.Error, "runtimePlatform.cpuArchitecture is ARM64") || !strings.Contains(b.Error, "--defender-platforms") {
					t.Errorf("error %q: want taskguard's refusal of an ARM64 task without an ARM64 defender", b.Error)
				}
				wantNoSecret(t, b, managerPassword)
			},
		},
		{
			name: "healthCheck and wafPort reach a task protected offline, and are refused where they cannot apply",
			jenkinsfile: `node {
    stage('scan') {
        taskguardScan(taskDefinition: 'multi.json', protectedTaskOutput: 'scan-out.json', ` + db + `, ` + offline + `,
                      healthCheck: true, wafPort: [9443, '8443'])
    }
    stage('protect') {
        taskguardProtectTask(taskDefinition: 'multi.json', ` + offline + `, protectedTaskOutput: 'out/protect.json',
                             healthCheck: 'true', wafPort: '8443,\n9443')
    }
    stage('plain') {
        taskguardProtectTask(taskDefinition: 'multi.json', ` + offline + `, protectedTaskOutput: 'out/plain.json', healthCheck: 'false')
    }
    stage('refusals') {
        for (Closure step : [
            { taskguardScan(taskDefinition: 'multi.json', protectedTaskOutput: 'x.json', wafPort: 70000) },
            { taskguardScan(taskDefinition: 'multi.json', wafPort: 8443) },
            { taskguardScan(taskDefinition: 'multi.json', protectedTaskOutput: 'x.json', consoleUrl: env.CONSOLE_URL, credentialsId: 'manager',
                            healthCheck: true) },
            { taskguardProtectTask(taskDefinition: 'multi.json', wafPort: '8443, https') },
            { taskguardProtectTask(taskDefinition: 'multi.json', wafPort: [[port: 8443]]) },
            { taskguardProtectTask(taskDefinition: 'multi.json', wafPort: 0) },
            { taskguardProtectTask(taskDefinition: 'multi.json', healthCheck: 'yes') },
            { taskguardProtectTask(taskDefinition: 'multi.json', consoleUrl: env.CONSOLE_URL, credentialsId: 'manager',
                                   wafPort: 8443, healthCheck: true) },
        ]) {
            try {
                step()
            } catch (e) {
                echo "refused: ${e.message}"
            }
        }
    }
}`,
			files: taskFiles,
			env:   map[string]string{"TASKGUARD_CACHE_DIR": f.db, "CONSOLE_URL": f.consoleURL},
			check: func(t *testing.T, b *buildResult) {
				wantResult(t, b, "SUCCESS")
				wantStages(t, b, "scan: SUCCESS", "protect: SUCCESS", "plain: SUCCESS", "refusals: SUCCESS")
				if s := findSh(t, b, "'scan-out.json'")["script"].(string); !strings.Contains(s, "'--waf-port' '9443' '--waf-port' '8443' '--health-check'") {
					t.Errorf("taskguard ci lacks the WAF ports and --health-check:\n%s", s)
				}
				for _, tt := range []struct {
					file   string
					ports  []int
					health bool
				}{
					{"scan-out.json", []int{8443, 9443}, true},
					{"out/protect.json", []int{8443, 9443}, true},
					{"out/plain.json", nil, false},
				} {
					d := fargatetest.ReadDefender(t, b.archived(t, tt.file))
					for _, app := range []string{"web", "worker"} {
						if diff := d.Diff(tt.ports, tt.health, app); diff != "" {
							t.Errorf("%s: %s", tt.file, diff)
						}
					}
				}
				const ports = "must be ports between 1 and 65535 (a number, a list of numbers or one string of comma-separated numbers), not "
				const offlineOnly = ": only a task protected offline (without consoleUrl) takes this; the console maps the external ports of its own WAF rules and gives the defender no health check"
				for _, want := range []string{
					"refused: taskguardScan: parameter 'wafPort' " + ports + "'70000'",
					"refused: taskguardScan: wafPort shape the protected task definition: give protectedTaskOutput (and taskDefinition) too",
					"refused: taskguardScan: healthCheck" + offlineOnly,
					"refused: taskguardProtectTask: parameter 'wafPort' " + ports + "'https'",
					"refused: taskguardProtectTask: parameter 'wafPort' " + ports + "[port:8443] (LinkedHashMap)",
					"refused: taskguardProtectTask: parameter 'wafPort' " + ports + "'0'",
					"refused: taskguardProtectTask: parameter 'healthCheck' must be true or false (a boolean, or the string 'true' or 'false'), not 'yes'",
					"refused: taskguardProtectTask: healthCheck and wafPort" + offlineOnly,
				} {
					if !strings.Contains(b.Log, want) {
						t.Errorf("log lacks %q", want)
					}
				}
				if n := len(b.calls("sh")); n != 3 {
					t.Errorf("%d sh calls, want 3 (the refused calls must not run taskguard or curl)", n)
				}
			},
		},
	}
}

// stallingServer starts a loopback HTTP server that takes every request and
// never answers it (until the test ends); it returns the server's URL and
// a count of the requests it took.
func stallingServer(t *testing.T) (url string, requests func() int) {
	t.Helper()
	done := make(chan struct{})
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		select {
		case <-r.Context().Done():
		case <-done:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(done) }) // runs first: Close does not wait on stalled requests
	return srv.URL, func() int { return int(n.Load()) }
}

// registryImage is an image of one layer holding files, to push to a registry.
func registryImage(t *testing.T, files map[string]string) v1.Image {
	t.Helper()
	dir := t.TempDir()
	content := map[string][]byte{}
	for name, data := range files {
		content[name] = []byte(data)
	}
	scantest.WriteFiles(t, dir, content)
	img, err := mutate.AppendLayers(empty.Image, scantest.DirLayer(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// minimistFindings counts the findings of a workspace JSON report, failing
// unless each is minimist's CVE-2021-44906 in the app's yarn.lock.
func minimistFindings(t *testing.T, b *buildResult, path string) int {
	t.Helper()
	var rep report.Report
	if err := json.Unmarshal([]byte(readWorkspace(t, b, path)), &rep); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for _, v := range rep.Vulnerabilities {
		if v.VulnerabilityID != "CVE-2021-44906" || v.PkgName != "minimist" || v.Location.Path != "srv/shop/yarn.lock" {
			t.Errorf("%s: unexpected finding %s %s in %s", path, v.VulnerabilityID, v.PkgName, v.Location.Path)
		}
	}
	return len(rep.Vulnerabilities)
}

// layerEntries counts the layer cache's entries under dir (0 when it does
// not exist).
func layerEntries(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(path, ".entry") {
			n++
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return n
}

func compactJSON(s string) string {
	return strings.Join(strings.Fields(s), "")
}

// wantContainers checks each named container of a protected task
// definition: "as is" (its entryPoint not the defender's, no
// TASKGUARD_FAIL_CLOSED), "protected" (started by the defender, fail-open)
// or "fail-closed" (started by the defender with TASKGUARD_FAIL_CLOSED=1).
func wantContainers(t *testing.T, data []byte, want map[string]string) {
	t.Helper()
	var task struct {
		ContainerDefinitions []struct {
			Name        string   `json:"name"`
			EntryPoint  []string `json:"entryPoint"`
			Environment []struct {
				Name  string `json:"name"`
				Value string `json:"value"`
			} `json:"environment"`
		} `json:"containerDefinitions"`
	}
	if err := json.Unmarshal(data, &task); err != nil {
		t.Fatalf("protected task: %v\n%s", err, data)
	}
	seen := map[string]bool{}
	for _, c := range task.ContainerDefinitions {
		w, ok := want[c.Name]
		if !ok {
			continue
		}
		seen[c.Name] = true
		protected := len(c.EntryPoint) > 0 && c.EntryPoint[0] == "/var/lib/taskguard/defender"
		failClosed := slices.ContainsFunc(c.Environment, func(e struct {
			Name  string `json:"name"`
			Value string `json:"value"`
		}) bool {
			return e.Name == "TASKGUARD_FAIL_CLOSED" && e.Value == "1"
		})
		got := "as is"
		switch {
		case protected && failClosed:
			got = "fail-closed"
		case protected:
			got = "protected"
		case failClosed:
			got = "fail-closed but not protected"
		}
		if got != w {
			t.Errorf("container %s is %s (entryPoint %q), want %s", c.Name, got, c.EntryPoint, w)
		}
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("container %s is missing from the protected task:\n%s", name, data)
		}
	}
}
