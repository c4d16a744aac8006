package command

import (
	"slices"
	"testing"
	"time"
)

func TestInventorySchedule(t *testing.T) {
	tests := []struct {
		name      string
		mode      string
		delay     time.Duration
		wantNil   bool
		wantDelay time.Duration
	}{
		{"default on", "on", 30 * time.Second, false, 30 * time.Second},
		{"off", "off", 30 * time.Second, true, 0},
		{"OFF", "OFF", 30 * time.Second, true, 0},
		{"zero delay means at once", "on", 0, false, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := inventorySchedule(tt.mode, tt.delay, time.Hour, 0.5, "/var/lib/taskguard/defender.sock")
			if (s == nil) != tt.wantNil {
				t.Fatalf("schedule = %+v, want nil %v", s, tt.wantNil)
			}
			if s == nil {
				return
			}
			if s.Delay != tt.wantDelay || s.Interval != time.Hour || s.Root != "/" || s.CPUBudget != 0.5 {
				t.Errorf("schedule delay %v interval %v root %q cpu %v", s.Delay, s.Interval, s.Root, s.CPUBudget)
			}
			if !slices.Contains(s.SkipDirs, "var/lib/taskguard") || !slices.Contains(s.SkipDirs, "proc") {
				t.Errorf("skip dirs %v lack the defender's volume or /proc", s.SkipDirs)
			}
		})
	}
}

func TestEnvFloat(t *testing.T) {
	for _, tt := range []struct {
		val  string
		want float64
	}{{"", 0.1}, {"1", 1}, {"0.25", 0.25}, {"0", 0.1}, {"2", 0.1}, {"-1", 0.1}, {"x", 0.1}, {"NaN", 0.1}} {
		t.Setenv("TASKGUARD_TEST_FLOAT", tt.val)
		if got := envFloat("TASKGUARD_TEST_FLOAT", 0.1); got != tt.want {
			t.Errorf("envFloat(%q) = %v, want %v", tt.val, got, tt.want)
		}
	}
}
