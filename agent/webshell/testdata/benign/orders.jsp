<%@ page import="java.sql.*,javax.naming.*,javax.sql.*" %>
<%
String customer = request.getParameter("customer");
DataSource ds = (DataSource) new InitialContext().lookup("java:comp/env/jdbc/shop");
try (Connection c = ds.getConnection();
     PreparedStatement st = c.prepareStatement("SELECT id, total FROM orders WHERE customer = ?")) {
    st.setString(1, customer);
    try (ResultSet rs = st.executeQuery()) {
        while (rs.next()) {
            out.println("<tr><td>" + rs.getInt(1) + "</td><td>" + rs.getBigDecimal(2) + "</td></tr>");
        }
    }
}
%>
