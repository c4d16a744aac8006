package localrun

import (
	"strings"
	"testing"
	"time"
)

func TestCreateArgs(t *testing.T) {
	task, err := ParseTask([]byte(`{"family": "f", "containerDefinitions": [
	  {"name": "side", "image": "img/side:1", "essential": true},
	  {"name": "app", "image": "img/app:1", "entryPoint": ["/var/lib/taskguard/defender", "entrypoint", "--", "entry.sh"],
	   "command": ["a", "b c"],
	   "environment": [{"name": "A", "value": "1"}, {"name": "TASKGUARD_CONSOLE", "value": "https://127.0.0.1:8083"}],
	   "secrets": [{"name": "TOKEN", "valueFrom": "arn:aws:ssm:us-east-1:1:parameter/t"}],
	   "volumesFrom": [{"sourceContainer": "side", "readOnly": true}],
	   "dependsOn": [{"containerName": "side", "condition": "START"}],
	   "linuxParameters": {"capabilities": {"add": ["SYS_PTRACE"], "drop": ["net_raw"]}, "initProcessEnabled": true},
	   "ulimits": [{"name": "nofile", "softLimit": 1024, "hardLimit": 2048}],
	   "healthCheck": {"command": ["CMD-SHELL", "test -S /sock"], "timeout": 2},
	   "workingDirectory": "/w", "user": "1000"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		console string
		want    string
	}{
		{"as given", "", `--stop-timeout 5 --entrypoint ["/var/lib/taskguard/defender","entrypoint","--","entry.sh"] --env A=1 --env TASKGUARD_CONSOLE=https://10.0.2.2:8083 --env TOKEN=tok --volumes-from P-side:ro --cap-add SYS_PTRACE --cap-drop NET_RAW --init --ulimit nofile=1024:2048 --health-cmd test -S /sock --health-interval disable --health-timeout 2s --workdir /w --user 1000 --pull missing img/app:1 a b c`},
		{"console override", "http://console.example:80", `--env TASKGUARD_CONSOLE=http://console.example:80`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &runner{task: task, names: map[string]string{"side": "P-side", "app": "P-app"},
				opts: Options{StopTimeout: 5 * time.Second, ConsoleURL: tt.console,
					LookupEnv: func(k string) (string, bool) { return "tok", k == "TOKEN" }}}
			args, err := r.createArgs(task.byName("app"))
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(args, " "); !strings.Contains(got, tt.want) {
				t.Fatalf("args\n%s\nwant to contain\n%s", got, tt.want)
			}
		})
	}
}

func TestStartOrder(t *testing.T) {
	task, err := ParseTask([]byte(`{"family": "f", "containerDefinitions": [
	  {"name": "c", "image": "x", "dependsOn": [{"containerName": "b", "condition": "HEALTHY"}]},
	  {"name": "b", "image": "x", "volumesFrom": [{"sourceContainer": "a"}], "healthCheck": {"command": ["CMD", "true"]}},
	  {"name": "a", "image": "x"},
	  {"name": "d", "image": "x"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	order, _ := task.startOrder()
	var names []string
	for _, c := range order {
		names = append(names, c.Name)
	}
	if got := strings.Join(names, ","); got != "a,b,c,d" {
		t.Fatalf("order %s, want a,b,c,d", got)
	}
}

func FuzzParseTask(f *testing.F) {
	f.Add([]byte(`{"family": "f", "containerDefinitions": [{"name": "a", "image": "x", "dependsOn": [{"containerName": "a", "condition": "START"}]}]}`))
	f.Add([]byte(`{"taskDefinition": {"family": "f", "containerDefinitions": [{"name": "a", "image": "x", "portMappings": [{"containerPort": 80}]}]}}`))
	f.Add([]byte(`{"containerDefinitions": [{"name": "a", "image": "x", "volumesFrom": [{"sourceContainer": "b"}]}, {"name": "b", "image": "y", "essential": false}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		task, err := ParseTask(data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		order, err := task.startOrder()
		if err != nil || len(order) != len(task.Containers) {
			t.Fatalf("accepted task has no start order: %v", err)
		}
	})
}
