package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// PathAgentInventory is where a defender posts the inventory of a running
// container (role agent): POST, body Inventory, answered 204.
const PathAgentInventory = "/api/v1/agent/inventory"

// Inventory is what a defender found in the filesystem of one running
// container: its OS, installed packages and the compliance checks that apply
// to a running container. It never carries file contents. The package and
// finding shapes mirror the scanners' JSON (analyzer.Package,
// compliance.Finding) so the console can match them against its
// vulnerability DB; this package does not import the scanners.
type Inventory struct {
	// Time is when the scan finished.
	Time       time.Time `json:"time"`
	TaskFamily string    `json:"taskFamily,omitempty"`
	TaskID     string    `json:"taskId,omitempty"`
	Container  string    `json:"container"`
	// Image is the image reference the task definition names.
	Image string `json:"image,omitempty"`
	// ImageDigest is the image's manifest digest when the defender knows it.
	ImageDigest string `json:"imageDigest,omitempty"`
	// Hash identifies the content of the package databases scanned
	// ("sha256:..."); equal hashes mean the same packages.
	Hash       string              `json:"hash"`
	OS         *InventoryOS        `json:"os,omitempty"`
	Packages   []InventoryPackage  `json:"packages"`
	Compliance []ComplianceFinding `json:"compliance,omitempty"`
	// Files is how many regular files the scan looked at.
	Files int `json:"files"`
	// Duration is how long the scan took (throttled), in milliseconds.
	DurationMS int64 `json:"durationMs"`
}

// InventoryOS is the operating system a container runs (analyzer.OS).
type InventoryOS struct {
	Family string `json:"family"`
	Name   string `json:"name"`
}

// InventoryPackage is one installed package (analyzer.Package).
type InventoryPackage struct {
	Type       string          `json:"type"`
	Name       string          `json:"name"`
	Version    string          `json:"version"`
	SrcName    string          `json:"srcName,omitempty"`
	SrcVersion string          `json:"srcVersion,omitempty"`
	Location   PackageLocation `json:"location"`
}

// PackageLocation is where a package was found (analyzer.Location).
type PackageLocation struct {
	Layer string `json:"layer,omitempty"`
	Path  string `json:"path"`
}

// ComplianceFinding is one failed compliance check (compliance.Finding).
type ComplianceFinding struct {
	CheckID     string `json:"checkID"`
	Family      string `json:"family"`
	Title       string `json:"title"`
	Severity    string `json:"severity"`
	Target      string `json:"target"`
	Message     string `json:"message"`
	Remediation string `json:"remediation"`
}

// MaxInventoryPackages bounds the packages of one inventory.
const MaxInventoryPackages = 200000

// Validate reports what makes an inventory unusable.
func (inv *Inventory) Validate() error {
	switch {
	case inv.Container == "":
		return errors.New("inventory: container is empty")
	case inv.Hash == "":
		return errors.New("inventory: hash is empty")
	case len(inv.Packages) > MaxInventoryPackages:
		return fmt.Errorf("inventory: %d packages, more than %d", len(inv.Packages), MaxInventoryPackages)
	}
	for i, p := range inv.Packages {
		if p.Type == "" || p.Name == "" {
			return fmt.Errorf("inventory: package %d has no type or name", i)
		}
	}
	return nil
}

// PathTaskImages lists the images running in protected tasks (GET), with
// their vulnerabilities matched against the console's current DB; filters:
// task (task family glob), image (glob), severity (minimum), cve, fixed=true.
// PathTaskImages + "/{id}" is one image in one task container, in detail.
const PathTaskImages = "/api/v1/images/tasks"

// TaskImage is an image running in a task container, as the defender last
// inventoried it, with its vulnerabilities matched at read time.
type TaskImage struct {
	ID          int64        `json:"id"`
	TaskFamily  string       `json:"taskFamily"`
	TaskID      string       `json:"taskId,omitempty"`
	Container   string       `json:"container"`
	Image       string       `json:"image,omitempty"`
	ImageDigest string       `json:"imageDigest,omitempty"`
	ReceivedAt  time.Time    `json:"receivedAt"`
	ScannedAt   time.Time    `json:"scannedAt"`
	OS          *InventoryOS `json:"os,omitempty"`
	Packages    int          `json:"packages"`
	// Severities counts the (filtered) vulnerabilities by severity.
	Severities map[string]int `json:"severities"`
	// Compliance counts the failed compliance checks.
	Compliance int `json:"compliance"`
	// Vulnerabilities and ComplianceFindings are filled in the detail only.
	Vulnerabilities    []TaskVulnerability `json:"vulnerabilities,omitempty"`
	ComplianceFindings []ComplianceFinding `json:"complianceFindings,omitempty"`
	// Warnings name what could not be checked (an unsupported OS, no DB).
	Warnings []string `json:"warnings,omitempty"`
}

// TaskVulnerability is one vulnerability of an installed package.
type TaskVulnerability struct {
	VulnerabilityID  string `json:"vulnerabilityID"`
	PkgType          string `json:"pkgType"`
	PkgName          string `json:"pkgName"`
	InstalledVersion string `json:"installedVersion"`
	FixedVersion     string `json:"fixedVersion,omitempty"`
	Status           string `json:"status"`
	Severity         string `json:"severity"`
	Title            string `json:"title,omitempty"`
	PrimaryURL       string `json:"primaryURL,omitempty"`
}

// TaskImageList is the answer of GET PathTaskImages.
type TaskImageList struct {
	Images []TaskImage `json:"images"`
	// DBUpdatedAt is when the vulnerability DB used was built, zero without one.
	DBUpdatedAt time.Time `json:"dbUpdatedAt"`
}

// PostInventory sends one container's inventory (role agent).
func (c *Client) PostInventory(ctx context.Context, inv Inventory) error {
	b, err := json.Marshal(inv)
	if err != nil {
		return fmt.Errorf("encode inventory: %w", err)
	}
	_, err = c.do(ctx, http.MethodPost, PathAgentInventory, nil, "application/json", bytes.NewReader(b))
	return err
}
