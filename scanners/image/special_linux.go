package image

import (
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/taskguard/taskguard/scanners/layercache"
)

// specialFS are the magic numbers (statfs f_type) of kernel filesystems
// that hold no packages and can be endless or change under a walk.
var specialFS = map[int64]string{
	unix.PROC_SUPER_MAGIC:    "proc",
	unix.SYSFS_MAGIC:         "sysfs",
	unix.DEVPTS_SUPER_MAGIC:  "devpts",
	unix.CGROUP_SUPER_MAGIC:  "cgroup",
	unix.CGROUP2_SUPER_MAGIC: "cgroup2",
	unix.SECURITYFS_MAGIC:    "securityfs",
	unix.DEBUGFS_MAGIC:       "debugfs",
	unix.TRACEFS_MAGIC:       "tracefs",
	unix.HUGETLBFS_MAGIC:     "hugetlbfs",
	unix.PSTOREFS_MAGIC:      "pstore",
	unix.BPF_FS_MAGIC:        "bpf",
	unix.BINFMTFS_MAGIC:      "binfmt_misc",
	unix.SELINUX_MAGIC:       "selinuxfs",
	unix.NSFS_MAGIC:          "nsfs",
	unix.EFIVARFS_MAGIC:      "efivarfs",
	unix.SMACK_MAGIC:         "smackfs",
	0x19800202:               "mqueue",
	0x62656570:               "configfs",
	0x65735543:               "fusectl",
}

// deviceOf returns the device a path is on, or 0.
func deviceOf(p string) uint64 {
	st, err := os.Lstat(p)
	if err != nil {
		return 0
	}
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return uint64(s.Dev)
	}
	return 0
}

// specialMount reports whether the directory p is the mount point of a
// kernel filesystem (proc, sysfs, cgroup, ...), and its name. Only a
// directory on another device than the root's (rootDev) is asked.
func specialMount(p string, rootDev uint64) (string, bool) {
	dev := deviceOf(p)
	if dev == 0 || dev == rootDev {
		return "", false
	}
	var st unix.Statfs_t
	if err := unix.Statfs(p, &st); err != nil {
		return "", false
	}
	name, ok := specialFS[int64(st.Type)]
	return name, ok
}

// archiveMemoKey names a docker archive file by its identity (absolute
// path, device, inode, size, modification and change times in
// nanoseconds): the change time cannot be set back from user space, so a
// rewritten file gets a new key. "" when the file cannot be stat'ed.
func archiveMemoKey(p string) string {
	abs, err := filepath.Abs(p)
	if err != nil {
		return ""
	}
	var st unix.Stat_t
	if err := unix.Stat(abs, &st); err != nil {
		return ""
	}
	return layercache.Key("archive-digest/1", abs,
		strconv.FormatUint(st.Dev, 10), strconv.FormatUint(st.Ino, 10), strconv.FormatInt(st.Size, 10),
		strconv.FormatInt(st.Mtim.Nano(), 10), strconv.FormatInt(st.Ctim.Nano(), 10))
}
