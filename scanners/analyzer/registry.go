package analyzer

// analyzers is the table of every analyzer, in the order they run on a file.
var analyzers = []Analyzer{
	osRelease{},
	dpkgStatus{},
	apkInstalled{},
	rpmDB{},
	goBinary{},
	npmPackage{},
	pythonPackage{},
	javaArchive{},
}

// All returns every registered analyzer.
func All() []Analyzer {
	return append([]Analyzer(nil), analyzers...)
}
