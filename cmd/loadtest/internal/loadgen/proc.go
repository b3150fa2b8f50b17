package loadgen

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
)

// userHZ is the unit of utime/stime in /proc/<pid>/stat. Linux fixes the
// user-visible USER_HZ at 100 on every architecture Go supports.
const userHZ = 100

// procSample is a process's cumulative CPU time and current RSS.
type procSample struct {
	CPUSeconds float64
	RSSKB      uint64
}

// readProc samples /proc/<pid>/stat (utime+stime) and /proc/<pid>/status
// (VmRSS).
func readProc(pid int) (procSample, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procSample{}, fmt.Errorf("read stat: %w", err)
	}
	cpu, err := parseStatCPU(stat)
	if err != nil {
		return procSample{}, err
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procSample{}, fmt.Errorf("read status: %w", err)
	}
	rss, err := parseStatusRSS(status)
	if err != nil {
		return procSample{}, err
	}
	return procSample{CPUSeconds: float64(cpu) / userHZ, RSSKB: rss}, nil
}

// parseStatCPU returns utime+stime in clock ticks. The command name (field 2)
// may contain spaces and parentheses, so fields are counted after the last ')'.
func parseStatCPU(stat []byte) (uint64, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat")
	}
	f := bytes.Fields(stat[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, err1 := strconv.ParseUint(string(f[11]), 10, 64)
	st, err2 := strconv.ParseUint(string(f[12]), 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("parse /proc stat: %w", err)
	}
	return ut + st, nil
}

func parseStatusRSS(status []byte) (uint64, error) {
	for line := range bytes.SplitSeq(status, []byte("\n")) {
		rest, ok := bytes.CutPrefix(line, []byte("VmRSS:"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) < 1 {
			break
		}
		v, err := strconv.ParseUint(string(f[0]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse VmRSS: %w", err)
		}
		return v, nil
	}
	return 0, errors.New("no VmRSS in /proc status")
}
