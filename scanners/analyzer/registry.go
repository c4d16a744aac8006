package analyzer

// analyzers is the table of every analyzer, in the order they run on a file.
var analyzers = []Analyzer{
	osRelease{},
	ubuntuESM{},
	dpkgStatus{},
	dpkgFiles{},
	apkInstalled{},
	apkRepositories{},
	rpmDB{},
	redHatContentManifest{},
	redHatDockerfile{},
	goBinary{},
	npmPackage{},
	pythonPackage{},
	javaArchive{},
	gemSpec{},
	composerInstalled{},
	dotnetDeps{},
	cargoAuditable{},
}

// All returns the analyzers an image scan runs by default.
func All() []Analyzer {
	return append([]Analyzer(nil), analyzers...)
}

// lockfiles are the opt-in analyzers of lock files, which describe what an
// application asked for rather than what an image holds (trivy, too, leaves
// them out of image scans by default).
var lockfiles = []Analyzer{
	npmLock{},
	goMod{},
	jsLock{},
	pythonLock{},
	gemLock{},
	composerLock{},
	cargoLock{},
	nugetLock{},
	gradleLock{},
	pomFile{},
	projectManifest{},
}

// Lockfiles returns the opt-in lock file analyzers, to add to All().
func Lockfiles() []Analyzer {
	return append([]Analyzer(nil), lockfiles...)
}
