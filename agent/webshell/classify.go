// Package webshell recognises web shells: scripts dropped into a web root
// that run what a request tells them to. Classify scores a script's content
// by explainable traits (a command or eval sink fed by request input,
// decode-and-eval chains, preg_replace /e, long high-entropy lines, an
// unchecked upload handler); Detector turns the file integrity scanner's
// FileChanged events (agent/fim) into file.webshell and file.changed
// signals. The scanner calls Classify when a script is created or modified,
// so detection stays a pure function of events and replays reproduce it.
//
// The classifier is deliberately lexical: it never executes or fully parses
// the script. Its taint tracking is one level of variable assignment
// ("$c = $_GET['c']; system($c);"), which covers the usual shells and keeps
// each finding explainable as a named trait.
package webshell

import (
	"math"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Threshold is the score from which a script is a web shell.
const Threshold = 0.7

// MaxClassifySize bounds the content Classify looks at: shells are small,
// and a multi-megabyte script is a bundle whose tail is scored as unknown.
const MaxClassifySize = 1 << 20

// Trait names. They are a public contract: they appear in signal reasons.
const (
	TraitExecRequest    = "exec_of_request_input"     // eval/system/... fed by request input
	TraitCallbackReq    = "callback_from_request"     // call_user_func/array_map/... with a request-chosen function
	TraitDynamicCall    = "dynamic_call_from_request" // $_GET['f'](...)
	TraitDecodeEval     = "eval_of_decoded_data"      // eval(base64_decode(...)), eval(gzinflate(...))
	TraitDecodeChain    = "decode_chain"              // gzinflate(base64_decode(...)) nested decoders
	TraitPregE          = "preg_replace_e"            // preg_replace with the /e modifier
	TraitLongLine       = "long_high_entropy_line"    // a very long line of high-entropy text
	TraitUpload         = "unchecked_upload"          // move_uploaded_file of the client's name without checks
	TraitIncludeRequest = "include_of_request_input"  // include/require of a request-chosen path
	TraitWriteRequest   = "write_of_request_input"    // file_put_contents/fwrite of request data (dropper)
	TraitExtract        = "extract_of_request"        // extract($_REQUEST): every request field becomes a variable
	TraitObfuscatedName = "obfuscated_function_name"  // "as"."sert", chr(101).chr(118)..., strrev('tressa')
	TraitShellUI        = "shell_ui_markers"          // c99/b374k-like: uname, safe_mode, disable_functions, passwd...
	TraitClassLoader    = "classloader_of_request"    // JSP/ASPX: define a class or assembly from request bytes
	TraitEvalDynamic    = "eval_of_variable"          // eval of something that is not a literal (weak)
	TraitVarCall        = "variable_call_of_request"  // $f($_POST['x']): a function chosen elsewhere, fed by the request
)

// weights: each trait's contribution; the score is 1 - Π(1 - w) over the
// traits found, so one strong trait flags alone and weak ones only together.
var weights = map[string]float64{
	TraitExecRequest:    0.95,
	TraitCallbackReq:    0.85,
	TraitDynamicCall:    0.9,
	TraitDecodeEval:     0.85,
	TraitDecodeChain:    0.45,
	TraitPregE:          0.75,
	TraitLongLine:       0.45,
	TraitUpload:         0.7,
	TraitIncludeRequest: 0.5,
	TraitWriteRequest:   0.5,
	TraitExtract:        0.5,
	TraitObfuscatedName: 0.55,
	TraitShellUI:        0.4,
	TraitClassLoader:    0.9,
	TraitEvalDynamic:    0.15,
	TraitVarCall:        0.5,
}

// scriptExts are the extensions a web server hands to an interpreter.
var scriptExts = map[string]lang{
	".php": php, ".php3": php, ".php4": php, ".php5": php, ".php7": php, ".php8": php, ".phtml": php, ".pht": php, ".phar": php,
	".jsp": jsp, ".jspx": jsp,
	".asp": asp, ".aspx": asp, ".ashx": asp, ".asmx": asp,
	".py": python, ".pl": perl, ".cgi": cgi,
}

type lang int

const (
	unknown lang = iota
	php
	jsp
	asp
	python
	perl
	cgi // any interpreter: all rule sets apply
)

// IsScript reports whether path has a script extension Classify handles.
func IsScript(path string) bool {
	_, ok := scriptExts[strings.ToLower(filepath.Ext(path))]
	return ok
}

// rules is one language's sources of request input and its sinks.
type rules struct {
	source   *regexp.Regexp // request input
	sink     *regexp.Regexp // group 1 = the sink's name; the match ends at its "("
	callback *regexp.Regexp // functions taking a callback by name
	assign   *regexp.Regexp // group 1 = assigned variable, group 2 = right-hand side
	sigil    string         // what precedes a variable's name ("$" in PHP and Perl)
}

var (
	phpRules = rules{
		source: regexp.MustCompile(`(?i)\$_(?:GET|POST|REQUEST|COOKIE|SERVER\s*\[\s*['"]HTTP_|FILES)|\$HTTP_(?:GET|POST|RAW_POST)_VARS|getallheaders\s*\(|apache_request_headers\s*\(|php://input`),
		// Preceded by neither a word character nor -> / :: (methods such as
		// $pdo->exec() and curl_exec() are not shell sinks).
		sink:     regexp.MustCompile("(?i)(?:^|[^\\w>:$])(eval|assert|system|passthru|shell_exec|popen|proc_open|exec|pcntl_exec|create_function)\\s*\\("),
		callback: regexp.MustCompile(`(?i)(?:^|[^\w>:$])(call_user_func(?:_array)?|array_map|array_filter|array_walk|usort|uasort|uksort|register_shutdown_function|register_tick_function|iterator_apply)\s*\(`),
		assign:   regexp.MustCompile(`\$(\w+)\s*(?:\.?=)\s*([^;]*)`),
		sigil:    "$",
	}
	jspRules = rules{
		source: regexp.MustCompile(`request\.(?:getParameter|getParameterValues|getHeader|getInputStream|getReader|getQueryString)\s*\(`),
		sink:   regexp.MustCompile(`(?:^|[^\w])(Runtime\s*\.\s*getRuntime\s*\(\s*\)\s*\.\s*exec|new\s+ProcessBuilder|\.eval|\.exec)\s*\(`),
		assign: regexp.MustCompile(`(\w+)\s*=\s*([^;\n]*)`),
		sigil:  "",
	}
	aspRules = rules{
		source: regexp.MustCompile(`(?i)Request\s*(?:\.\s*(?:Form|QueryString|Item|Cookies|Params|ServerVariables|BinaryRead|InputStream)|\(|\[)`),
		sink:   regexp.MustCompile(`(?i)(?:^|[^\w.])(eval|execute|executeglobal)\s*[\s(]|(?:Process\s*\.\s*Start|\.Run|\.Exec)\s*\(`),
		assign: regexp.MustCompile(`(?i)(?:Dim\s+|var\s+|string\s+)?(\w+)\s*=\s*([^;\r\n]*)`),
		sigil:  "",
	}
	pythonRules = rules{
		source: regexp.MustCompile(`request\.(?:args|form|values|GET|POST|data|json|get_json|body|headers|cookies|COOKIES)|cgi\.FieldStorage|\.getvalue\s*\(|\.getfirst\s*\(|environ\s*(?:\[\s*['"]QUERY_STRING|\.get\s*\(\s*['"]QUERY_STRING)|sys\.stdin`),
		sink:   regexp.MustCompile(`(?:^|[^\w.])(eval|exec|os\.system|os\.popen|subprocess\.(?:call|run|Popen|check_output|check_call|getoutput|getstatusoutput)|commands\.getoutput|pty\.spawn)\s*\(`),
		assign: regexp.MustCompile(`(?m)^\s*(\w+)\s*=\s*(.*)$`),
		sigil:  "",
	}
	perlRules = rules{
		source: regexp.MustCompile(`(?:^|[^\w])param\s*\(|->param\s*\(|\$ENV\s*\{\s*['"]?QUERY_STRING|<STDIN>|url_param\s*\(`),
		sink:   regexp.MustCompile(`(?:^|[^\w>$])(system|exec|eval|qx|open)\s*[({]`),
		assign: regexp.MustCompile(`(?:my\s+)?\$(\w+)\s*=\s*([^;]*)`),
		sigil:  "$",
	}
)

var (
	reDecoder     = `(?:base64_decode|gzinflate|gzuncompress|gzdecode|str_rot13|strrev|hex2bin|convert_uudecode|pack|urldecode|rawurldecode|hexdec)`
	reDecodeEval  = regexp.MustCompile(`(?i)(?:^|[^\w>:$])(?:eval|assert|create_function)\s*\(\s*(?:["'][^"']*["']\s*\.\s*)?@?` + reDecoder + `\s*\(`)
	reDecodeChain = regexp.MustCompile(`(?i)` + reDecoder + `\s*\(\s*@?` + reDecoder + `\s*\(`)
	// /e: the delimiter, the pattern, the delimiter again, then modifiers
	// containing e. Common delimiters only.
	rePregE       = regexp.MustCompile(`(?i)preg_replace\s*\(\s*['"](?:/[^/]*/|#[^#]*#|~[^~]*~|\|[^|]*\||@[^@]*@|!.*?!)[a-zA-Z]*e[a-zA-Z]*['"]`)
	reUpload      = regexp.MustCompile(`(?i)move_uploaded_file\s*\(`)
	reUploadName  = regexp.MustCompile(`(?i)\$_FILES\s*\[[^\]]+\]\s*\[\s*['"]name['"]\s*\]`)
	reUploadCheck = regexp.MustCompile(`(?i)pathinfo\s*\(|in_array\s*\(|getimagesize\s*\(|finfo_|mime_content_type|exif_imagetype|preg_match\s*\(|wp_check_filetype|basename\s*\(\s*\$_FILES[^)]*\)\s*\)\s*!==|\$allowed|uniqid\s*\(|random_bytes|bin2hex|hash_file|\$_FILES[^;]*\[\s*['"]type['"]\s*\]|->getClientOriginalExtension|->guessExtension`)
	reIncludeReq  = regexp.MustCompile(`(?i)(?:include|require)(?:_once)?\s*\(?\s*[^;]*\$_(?:GET|POST|REQUEST|COOKIE)`)
	reWriteReq    = regexp.MustCompile(`(?i)(?:file_put_contents|fwrite|fputs)\s*\(\s*[^;]*\$_(?:GET|POST|REQUEST|COOKIE|FILES)`)
	reExtract     = regexp.MustCompile(`(?i)(?:extract|parse_str)\s*\(\s*\$_(?:GET|POST|REQUEST|COOKIE)\s*\)`)
	reDynCall     = regexp.MustCompile(`(?i)\$_(?:GET|POST|REQUEST|COOKIE|SERVER)\s*\[[^\]]*\]\s*\(|\$\{\s*['"]_(?:GET|POST|REQUEST|COOKIE)['"]\s*\}\s*\[[^\]]*\]\s*\(`)
	// Function names hidden from a grep: built by concatenating literals
	// ("as"."sert"), from chr() codes, or reversed.
	reConcat    = regexp.MustCompile(`(?:["']\w*["']\s*\.\s*)+["']\w*["']`)
	reLiteral   = regexp.MustCompile(`["'](\w*)["']`)
	reChrs      = regexp.MustCompile(`(?i)(?:chr\s*\(\s*\d+\s*\)\s*\.\s*){3,}`)
	reRevName   = regexp.MustCompile(`(?i)strrev\s*\(\s*['"](?:tressa|lave|metsys|cexe_llehs|urhtssap|edoced_46esab|etalfnizg|noitcnuf_etaerc)['"]`)
	reShellUI   = regexp.MustCompile(`(?i)uname\s+-a|disable_functions|safe_mode|/etc/passwd|posix_getpwuid|php_uname|getmyuid|fsockopen|bind\s*shell|back\s*connect|net\s+user|cmd\.exe|/bin/sh\s+-i`)
	reClassLoad = regexp.MustCompile(`(?i)defineClass\s*\(|Assembly\.Load\s*\(`)
	reVarCall   = regexp.MustCompile(`(?:^|[^\w>:$])@?\$\w+\s*\(`)
	reEvalVar   = regexp.MustCompile(`(?i)(?:^|[^\w>:$])eval\s*\(\s*[^'")\s]`)
	reB64Decode = regexp.MustCompile(`(?i)base64_?decode|Base64\.(?:getDecoder|decode)|FromBase64String|b64decode`)
)

// Classify scores a script's content (at most MaxClassifySize bytes are
// looked at) and names the traits found, sorted. path selects the language
// by extension; a file that is not a script scores 0. Deterministic.
func Classify(path string, content []byte) (score float64, traits []string) {
	l, ok := scriptExts[strings.ToLower(filepath.Ext(path))]
	if !ok {
		return 0, nil
	}
	if len(content) > MaxClassifySize {
		content = content[:MaxClassifySize]
	}
	src := string(content)
	found := map[string]bool{}
	var sets []rules
	switch l {
	case php:
		sets = []rules{phpRules}
	case jsp:
		sets = []rules{jspRules}
	case asp:
		sets = []rules{aspRules}
	case python:
		sets = []rules{pythonRules}
	case perl:
		sets = []rules{perlRules}
	case cgi:
		sets = []rules{perlRules, pythonRules, phpRules}
	}
	for _, r := range sets {
		tainted := taintedVars(src, r)
		if sinkFedByInput(src, r.sink, r, tainted) {
			found[TraitExecRequest] = true
		}
		if r.callback != nil && callbackFromInput(src, r, tainted) {
			found[TraitCallbackReq] = true
		}
		if r.callback != nil && (sinkFedByInput(src, reVarCall, r, tainted) || (reExtract.MatchString(src) && reVarCall.MatchString(src))) {
			found[TraitVarCall] = true
		}
		if (l == jsp || l == asp) && reClassLoad.MatchString(src) && reB64Decode.MatchString(src) && r.source.MatchString(src) {
			found[TraitClassLoader] = true
		}
	}
	if l == php || l == cgi {
		phpTraits(src, found)
	}
	if longEntropyLine(src) {
		found[TraitLongLine] = true
	}
	for t := range found {
		traits = append(traits, t)
	}
	sort.Strings(traits)
	keep := 1.0
	for _, t := range traits {
		keep *= 1 - weights[t]
	}
	return math.Round((1-keep)*1000) / 1000, traits
}

func phpTraits(src string, found map[string]bool) {
	if reDecodeEval.MatchString(src) {
		found[TraitDecodeEval] = true
	}
	if reDecodeChain.MatchString(src) {
		found[TraitDecodeChain] = true
	}
	if rePregE.MatchString(src) {
		found[TraitPregE] = true
	}
	if reUpload.MatchString(src) && reUploadName.MatchString(src) && !reUploadCheck.MatchString(src) {
		found[TraitUpload] = true
	}
	if reIncludeReq.MatchString(src) {
		found[TraitIncludeRequest] = true
	}
	if reWriteReq.MatchString(src) {
		found[TraitWriteRequest] = true
	}
	if reExtract.MatchString(src) {
		found[TraitExtract] = true
	}
	if reDynCall.MatchString(src) {
		found[TraitDynamicCall] = true
	}
	if obfuscatedName(src) {
		found[TraitObfuscatedName] = true
	}
	if len(reShellUI.FindAllStringIndex(src, -1)) >= 3 {
		found[TraitShellUI] = true
	}
	if !found[TraitDecodeEval] && !found[TraitExecRequest] && reEvalVar.MatchString(src) {
		found[TraitEvalDynamic] = true
	}
}

// dangerousNames are functions a shell hides the name of.
var dangerousNames = map[string]bool{
	"assert": true, "eval": true, "system": true, "exec": true, "shell_exec": true, "passthru": true,
	"popen": true, "proc_open": true, "create_function": true, "base64_decode": true, "gzinflate": true,
	"gzuncompress": true, "str_rot13": true, "preg_replace": true, "call_user_func": true,
}

func obfuscatedName(src string) bool {
	if reChrs.MatchString(src) || reRevName.MatchString(src) {
		return true
	}
	for _, m := range reConcat.FindAllString(src, -1) {
		var b strings.Builder
		for _, l := range reLiteral.FindAllStringSubmatch(m, -1) {
			b.WriteString(l[1])
		}
		if dangerousNames[strings.ToLower(b.String())] {
			return true
		}
	}
	return false
}

// taintedVars returns a pattern matching the variables assigned (directly
// or through one another, to a fixed point) from request input, nil when
// there are none.
func taintedVars(src string, r rules) *regexp.Regexp {
	names := map[string]bool{}
	// foreach ($_POST as $k => $v): both are request input.
	if r.sigil == "$" {
		for _, m := range reForeach.FindAllStringSubmatch(src, -1) {
			if m[1] != "" {
				names[m[1]] = true
			}
			names[m[2]] = true
		}
	}
	assigns := r.assign.FindAllStringSubmatch(src, -1)
	re := varsPattern(names, r.sigil)
	for changed := true; changed; {
		changed = false
		for _, m := range assigns {
			name, rhs := m[1], m[2]
			if names[name] || name == "" {
				continue
			}
			if r.source.MatchString(rhs) || (re != nil && re.MatchString(rhs)) {
				names[name] = true
				changed = true
			}
		}
		if changed {
			re = varsPattern(names, r.sigil)
		}
	}
	return re
}

var reForeach = regexp.MustCompile(`(?i)foreach\s*\(\s*\$_(?:GET|POST|REQUEST|COOKIE)\s+as\s+(?:\$(\w+)\s*=>\s*)?\$(\w+)`)

// varsPattern matches a use of any of the names (sorted, so the pattern is
// deterministic).
func varsPattern(names map[string]bool, sigil string) *regexp.Regexp {
	if len(names) == 0 {
		return nil
	}
	list := make([]string, 0, len(names))
	for n := range names {
		list = append(list, regexp.QuoteMeta(n))
	}
	sort.Strings(list)
	return regexp.MustCompile(`(?:^|[^\w$@])` + regexp.QuoteMeta(sigil) + `(?:` + strings.Join(list, "|") + `)\b`)
}

func fed(args string, r rules, tainted *regexp.Regexp) bool {
	return r.source.MatchString(args) || (tainted != nil && tainted.MatchString(args))
}

// sinkFedByInput reports whether a call of sink has request input (or a
// tainted variable) among its arguments.
func sinkFedByInput(src string, sink *regexp.Regexp, r rules, tainted *regexp.Regexp) bool {
	for _, loc := range sink.FindAllStringSubmatchIndex(src, -1) {
		if fed(callArgs(src[loc[1]-1:]), r, tainted) {
			return true
		}
	}
	// The backtick operator of PHP and Perl runs a shell: `$cmd`.
	if r.sigil == "$" && sink == r.sink {
		for _, m := range reBacktick.FindAllStringSubmatch(src, -1) {
			if fed(m[1], r, tainted) {
				return true
			}
		}
	}
	return false
}

// callbackFromInput reports a callback-taking function whose callback
// argument (not its data: array_map over request fields is ordinary) is
// request input.
func callbackFromInput(src string, r rules, tainted *regexp.Regexp) bool {
	for _, loc := range r.callback.FindAllStringSubmatchIndex(src, -1) {
		name := strings.ToLower(src[loc[2]:loc[3]])
		args := splitArgs(callArgs(src[loc[1]-1:]))
		i := 0
		switch name {
		case "array_filter", "array_walk", "usort", "uasort", "uksort", "iterator_apply":
			i = 1
		}
		if i < len(args) && fed(args[i], r, tainted) {
			return true
		}
	}
	return false
}

// splitArgs splits "(a, f(b, c), d)" into its top-level arguments.
func splitArgs(call string) []string {
	if len(call) < 2 || call[0] != '(' {
		return nil
	}
	call = call[1 : len(call)-1]
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(call); i++ {
		switch call[i] {
		case '(', '[', '{':
			depth++
		case ')', ']', '}':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, call[start:i])
				start = i + 1
			}
		}
	}
	return append(out, call[start:])
}

var reBacktick = regexp.MustCompile("`([^`\\n]{1,300})`")

// callArgs returns the text from an opening bracket to its matching close
// (or the end of the statement for bracket-less calls), at most 2000 bytes.
func callArgs(s string) string {
	if len(s) > 2000 {
		s = s[:2000]
	}
	if s == "" || (s[0] != '(' && s[0] != '{') {
		if i := strings.IndexAny(s, ";\n"); i >= 0 {
			return s[:i]
		}
		return s
	}
	depth := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(', '{', '[':
			depth++
		case ')', '}', ']':
			depth--
			if depth == 0 {
				return s[:i+1]
			}
		}
	}
	return s
}

// longEntropyLine: packed payloads are long lines of base64 or escaped
// bytes. Minified code is long too but has a lower entropy (keywords,
// repeated identifiers) and spaces or punctuation, so both length and
// entropy must be high.
func longEntropyLine(src string) bool {
	for len(src) > 0 {
		i := strings.IndexByte(src, '\n')
		line := src
		if i >= 0 {
			line, src = src[:i], src[i+1:]
		} else {
			src = ""
		}
		if len(line) < 1000 {
			continue
		}
		if entropy(line) >= 5.2 && strings.Count(line, " ") < len(line)/50 {
			return true
		}
	}
	return false
}

func entropy(s string) float64 {
	var counts [256]int
	for i := 0; i < len(s); i++ {
		counts[s[i]]++
	}
	var h float64
	n := float64(len(s))
	for _, c := range counts {
		if c > 0 {
			p := float64(c) / n
			h -= p * math.Log2(p)
		}
	}
	return h
}
