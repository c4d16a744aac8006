package waf_test

import (
	"fmt"

	"github.com/taskguard/taskguard/agent/waf"
)

func ExampleProtectionOf() {
	for _, id := range []int{942100, 941110, 932170, 932160, 930120, 944130, 913100, 920170, 200002, 949110} {
		fmt.Println(id, waf.ProtectionOf(id))
	}
	// Output:
	// 942100 sqli
	// 941110 xss
	// 932170 shellshock
	// 932160 cmdi
	// 930120 lfi
	// 944130 code-injection
	// 913100 attack-tools
	// 920170 protocol
	// 200002 protocol
	// 949110
}
