<%@ taglib prefix="c" uri="http://java.sun.com/jsp/jstl/core" %>
<%@ page contentType="text/html;charset=UTF-8" %>
<html>
<body>
<c:set var="name" value="${param.name}" />
<h1>Hello, <c:out value="${empty name ? 'guest' : name}" /></h1>
<p>Session: <%= session.getId().substring(0, 8) %></p>
</body>
</html>
