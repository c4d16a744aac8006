package fargate_test

import (
	"context"
	"fmt"
	"os"

	"github.com/taskguard/taskguard/console/fargate"
)

// An App Mesh task with a FireLens log router: only the app runs under the
// launcher; the report says why Envoy and the router were left alone.
func ExampleProtectJSONReport() {
	task, err := os.ReadFile("../../testdata/taskdef/corpus/appmesh-firelens.json")
	if err != nil {
		fmt.Println(err)
		return
	}
	_, rep, err := fargate.ProtectJSONReport(context.Background(), task, fargate.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(rep)
	// Output:
	// protected: app
	// not protected: envoy: the proxyConfiguration container (App Mesh / Service Connect proxy); include it by name to protect it
	// not protected: log_router: FireLens log router (firelensConfiguration); include it by name to protect it
}

// Where the defender reports to, as protect spells it.
func ExampleConsoleURL() {
	for _, addr := range []string{"console.example.com:8083", "10.0.2.2:8083", "https://console.example.com", "http://127.0.0.1:8083"} {
		u, _ := fargate.ConsoleURL(addr, false)
		fmt.Println(u)
	}
	u, _ := fargate.ConsoleURL("console.example.com:8083", true) // a console run with --insecure-http
	fmt.Println(u)
	// Output:
	// https://console.example.com:8083
	// https://10.0.2.2:8083
	// https://console.example.com
	// http://127.0.0.1:8083
	// http://console.example.com:8083
}
