package cli

import (
	"fmt"
	"strconv"
	"strings"
)

// portsValue is a repeatable --flag of TCP ports (also "8080,8443").
type portsValue struct{ ports *[]uint16 }

func (p *portsValue) String() string {
	if p.ports == nil {
		return ""
	}
	s := make([]string, len(*p.ports))
	for i, v := range *p.ports {
		s[i] = strconv.Itoa(int(v))
	}
	return strings.Join(s, ",")
}

func (p *portsValue) Set(v string) error {
	for _, part := range strings.Split(v, ",") {
		n, err := strconv.ParseUint(strings.TrimSpace(part), 10, 16)
		if err != nil || n == 0 {
			return fmt.Errorf("%q is not a port between 1 and 65535", part)
		}
		*p.ports = append(*p.ports, uint16(n))
	}
	return nil
}

func (p *portsValue) Type() string { return "port" }
