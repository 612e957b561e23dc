package persist

import (
	"encoding/binary"
	"errors"
	"strconv"
	"strings"
)

// XattrCapability is the extended attribute holding file capabilities.
const XattrCapability = "security.capability"

// capNames lists capability names by number (linux/capability.h).
const capNames = "chown dac_override dac_read_search fowner fsetid kill setgid setuid setpcap linux_immutable " +
	"net_bind_service net_broadcast net_admin net_raw ipc_lock ipc_owner sys_module sys_rawio sys_chroot " +
	"sys_ptrace sys_pacct sys_admin sys_boot sys_nice sys_resource sys_time sys_tty_config mknod lease " +
	"audit_write audit_control setfcap mac_override mac_admin syslog wake_alarm block_suspend audit_read " +
	"perfmon bpf checkpoint_restore"

func capName(i int) string {
	names := strings.Fields(capNames)
	if i < len(names) {
		return "cap_" + names[i]
	}
	return "cap_" + strconv.Itoa(i)
}

// DecodeCapabilities renders a security.capability value (struct
// vfs_cap_data, revisions 1 to 3) the way getcap(8) does:
// "cap_net_raw=ep", "cap_setuid,cap_setgid=p cap_kill+i",
// with " [rootid=N]" for a namespaced (revision 3) capability.
func DecodeCapabilities(b []byte) (string, error) {
	if len(b) < 4 {
		return "", errors.New("capability xattr too short")
	}
	magic := binary.LittleEndian.Uint32(b)
	var words int
	switch magic & 0xff000000 {
	case 0x01000000:
		words = 1
	case 0x02000000, 0x03000000:
		words = 2
	default:
		return "", errors.New("unknown capability revision")
	}
	if len(b) < 4+8*words {
		return "", errors.New("capability xattr truncated")
	}
	var perm, inh uint64
	for i := 0; i < words; i++ {
		perm |= uint64(binary.LittleEndian.Uint32(b[4+8*i:])) << (32 * i)
		inh |= uint64(binary.LittleEndian.Uint32(b[8+8*i:])) << (32 * i)
	}
	set := func(m uint64) string {
		var names []string
		for i := 0; i < 64; i++ {
			if m&(1<<i) != 0 {
				names = append(names, capName(i))
			}
		}
		return strings.Join(names, ",")
	}
	var parts []string
	if perm != 0 {
		flags := "p"
		if magic&1 != 0 {
			flags = "ep"
		}
		parts = append(parts, set(perm)+"="+flags)
	}
	if inh != 0 {
		parts = append(parts, set(inh)+"+i")
	}
	s := strings.Join(parts, " ")
	if s == "" {
		s = "="
	}
	if magic&0xff000000 == 0x03000000 && len(b) >= 24 {
		s += " [rootid=" + strconv.FormatUint(uint64(binary.LittleEndian.Uint32(b[20:])), 10) + "]"
	}
	return s, nil
}
