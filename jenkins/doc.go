// Package jenkins holds taskguard's Jenkins shared library: the pipeline
// steps in vars/ (taskguardScan, taskguardProtectTask, taskguardPublish, each
// with its .txt help), the example Jenkinsfiles in examples/ and, in test/, a
// Groovy pipeline harness. The package has no Go API: its tests build the
// real taskguard and taskguard-console, run the library's steps and the
// examples in the harness against them, and lint the Groovy.
package jenkins
