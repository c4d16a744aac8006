package api_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/taskguard/taskguard/console/api"
	"github.com/taskguard/taskguard/console/consoletest"
	"github.com/taskguard/taskguard/console/fargate"
)

// armTask runs on ARM64 with an app, a worker, an observability sidecar
// and a FireLens log router.
const armTask = `{
  "family": "shop-arm",
  "runtimePlatform": {"cpuArchitecture": "ARM64", "operatingSystemFamily": "LINUX"},
  "containerDefinitions": [
    {"name": "app", "image": "registry.example/shop/app:1", "entryPoint": ["/app"], "essential": true},
    {"name": "worker", "image": "registry.example/shop/worker:1", "entryPoint": ["/worker"]},
    {"name": "otel", "image": "public.ecr.aws/aws-observability/aws-otel-collector:v0.40.0"},
    {"name": "log_router", "image": "public.ecr.aws/aws-observability/aws-for-fluent-bit:stable",
     "firelensConfiguration": {"type": "fluentbit"}, "entryPoint": ["/fluent-bit/bin/fluent-bit"]}
  ]
}`

type container struct {
	Name        string                         `json:"name"`
	Environment []struct{ Name, Value string } `json:"environment"`
}

func env(c container, name string) string {
	for _, e := range c.Environment {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// TestProtectOptionsReachTheConsole: every ProtectOptions field travels to a
// real console and changes what it answers: DefenderPlatforms lets an ARM64
// task through (refused without), Exclude and SkipImages leave containers
// as they are, Include protects the FireLens router, FailClosed is written
// into the protected app; the console adds its own certificate as
// TASKGUARD_CONSOLE_CA_PEM. ProtectFargateReport returns what the console
// said about each container.
func TestProtectOptionsReachTheConsole(t *testing.T) {
	c := consoletest.Start(t)
	ctx := context.Background()
	admin := c.Admin()
	base := api.ProtectOptions{ConsoleAddr: "127.0.0.1:8083"}

	_, err := admin.ProtectFargate(ctx, []byte(armTask), base)
	if !api.IsStatus(err, 400) || !strings.Contains(err.Error(), "ARM64") {
		t.Fatalf("an ARM64 task without defenderPlatforms: %v, want 400 naming ARM64", err)
	}

	opts := base
	opts.DefenderPlatforms = []string{fargate.PlatformAMD64, fargate.PlatformARM64}
	opts.Exclude = []string{"worker"}
	opts.SkipImages = []string{"public.ecr.aws/aws-observability/aws-otel-*"}
	opts.Include = []string{"log_router"}
	opts.FailClosed = true
	res, err := admin.ProtectFargateReport(ctx, []byte(armTask), opts)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(res.Protected)
	if want := []string{"app", "log_router"}; !slices.Equal(res.Protected, want) {
		t.Errorf("protected = %q, want %q", res.Protected, want)
	}
	skipped := strings.Join(res.Skipped, "\n")
	if len(res.Skipped) != 2 || !strings.Contains(skipped, "worker: ") || !strings.Contains(skipped, "otel: ") {
		t.Errorf("skipped = %q, want worker and otel with reasons", res.Skipped)
	}
	var td struct {
		ContainerDefinitions []container `json:"containerDefinitions"`
	}
	if err := json.Unmarshal(res.Task, &td); err != nil {
		t.Fatal(err)
	}
	byName := map[string]container{}
	for _, cd := range td.ContainerDefinitions {
		byName[cd.Name] = cd
	}
	for name, want := range map[string]string{"app": "1", "log_router": "1", "worker": "", "otel": ""} {
		if got := env(byName[name], fargate.EnvFailClosed); got != want {
			t.Errorf("%s: %s=%q, want %q", name, fargate.EnvFailClosed, got, want)
		}
	}
	def, ok := byName[fargate.DefenderContainerName]
	if !ok {
		t.Fatalf("no %s container in %s", fargate.DefenderContainerName, res.Task)
	}
	if pem := env(def, fargate.EnvConsoleCAPEM); !strings.HasPrefix(pem, "-----BEGIN CERTIFICATE-----") {
		t.Errorf("defender %s = %.40q, want the console's certificate", fargate.EnvConsoleCAPEM, pem)
	}

	// Without the options the same console protects differently: the
	// worker is protected, the router is not, nothing fails closed.
	opts = base
	opts.DefenderPlatforms = []string{fargate.PlatformARM64}
	opts.SkipImages = []string{"public.ecr.aws/aws-observability/aws-otel-collector"}
	res, err = admin.ProtectFargateReport(ctx, []byte(armTask), opts)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(res.Protected)
	if want := []string{"app", "worker"}; !slices.Equal(res.Protected, want) || strings.Contains(string(res.Task), fargate.EnvFailClosed) {
		t.Errorf("default options: protected %q (want %q), fail-closed present: %v", res.Protected, want, strings.Contains(string(res.Task), fargate.EnvFailClosed))
	}
}
