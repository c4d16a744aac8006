//go:build race

package console

// raceEnabled: the race detector multiplies a process's memory several times,
// so memory bounds are checked in the plain run only.
const raceEnabled = true
