<%
Dim page, conn, rs
page = Request.QueryString("page")
If Not IsNumeric(page) Or page = "" Then page = 1
Set conn = Server.CreateObject("ADODB.Connection")
conn.Open Application("ConnString")
Set rs = conn.Execute("SELECT TOP 10 title FROM news ORDER BY id DESC")
Do While Not rs.EOF
  Response.Write "<li>" & Server.HTMLEncode(rs("title")) & "</li>"
  rs.MoveNext
Loop
Response.Write "<p>Page " & Server.HTMLEncode(page) & "</p>"
%>
