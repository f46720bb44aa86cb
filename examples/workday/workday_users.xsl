<?xml version="1.0" encoding="UTF-8"?>
<!--
  workday_users.xsl: a Workday custom report (Report-as-a-Service XML,
  wd:Report_Data / wd:Report_Entry) to rosterd's users.csv, one row per
  worker. XSLT 1.0, so it runs in Workday's Document Transformation and
  custom EIB transformation steps as well as in xsltproc:

      xsltproc workday_users.xsl worker_directory.xml > users.csv

  Change the xmlns:wd URI below to your report's: Workday names the
  namespace after the report (urn:com.workday.report/<Report_Name>).
  Change a field's path here when your report uses another XML alias.
-->
<xsl:stylesheet version="1.0"
	xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
	xmlns:wd="urn:com.workday.report/INT_rosterd_Worker_Directory">

	<xsl:output method="text" encoding="UTF-8"/>
	<xsl:strip-space elements="*"/>

	<!-- Workers by Employee_ID, to look up a manager's work email. -->
	<xsl:key name="worker" match="wd:Report_Entry" use="wd:Employee_ID"/>

	<xsl:template match="/">
		<xsl:text>user_id,email,first_name,last_name,username,display_name,job_title,employee_type,employment_start_date,department_name,division_name,cost_center_name,manager_id,manager_name,manager_email,work_address_locality,work_address_country,status,location,workday_id&#10;</xsl:text>
		<xsl:apply-templates select="wd:Report_Data/wd:Report_Entry"/>
	</xsl:template>

	<xsl:template match="wd:Report_Entry">
		<xsl:variable name="manager_id" select="wd:Manager/wd:ID[@wd:type='Employee_ID']"/>
		<xsl:call-template name="field"><xsl:with-param name="value" select="wd:Employee_ID"/></xsl:call-template>
		<xsl:call-template name="field"><xsl:with-param name="value" select="wd:Email_-_Primary_Work"/></xsl:call-template>
		<xsl:call-template name="field"><xsl:with-param name="value" select="wd:First_Name"/></xsl:call-template>
		<xsl:call-template name="field"><xsl:with-param name="value" select="wd:Last_Name"/></xsl:call-template>
		<xsl:call-template name="field"><xsl:with-param name="value" select="wd:User_Name"/></xsl:call-template>
		<xsl:call-template name="field"><xsl:with-param name="value" select="wd:Worker/@wd:Descriptor"/></xsl:call-template>
		<xsl:call-template name="field"><xsl:with-param name="value" select="wd:Business_Title"/></xsl:call-template>
		<xsl:call-template name="field"><xsl:with-param name="value" select="wd:Employee_Type/@wd:Descriptor"/></xsl:call-template>
		<!-- Workday writes dates with their time zone (2019-03-04-08:00);
		     rosterd wants the calendar date, YYYY-MM-DD. -->
		<xsl:call-template name="field"><xsl:with-param name="value" select="substring(wd:Hire_Date, 1, 10)"/></xsl:call-template>
		<xsl:call-template name="field"><xsl:with-param name="value" select="wd:Department/@wd:Descriptor"/></xsl:call-template>
		<xsl:call-template name="field"><xsl:with-param name="value" select="wd:Company/@wd:Descriptor"/></xsl:call-template>
		<xsl:call-template name="field"><xsl:with-param name="value" select="wd:Cost_Center/@wd:Descriptor"/></xsl:call-template>
		<xsl:call-template name="field"><xsl:with-param name="value" select="$manager_id"/></xsl:call-template>
		<xsl:call-template name="field"><xsl:with-param name="value" select="wd:Manager/@wd:Descriptor"/></xsl:call-template>
		<xsl:call-template name="field"><xsl:with-param name="value" select="key('worker', $manager_id)/wd:Email_-_Primary_Work"/></xsl:call-template>
		<xsl:call-template name="field"><xsl:with-param name="value" select="wd:Location_Address_-_City"/></xsl:call-template>
		<xsl:call-template name="field"><xsl:with-param name="value" select="wd:Location_Address_-_Country/wd:ID[@wd:type='ISO_3166-1_Alpha-2_Code']"/></xsl:call-template>
		<xsl:call-template name="field">
			<xsl:with-param name="value">
				<xsl:choose>
					<xsl:when test="wd:Active_Status = '1'">active</xsl:when>
					<xsl:otherwise>inactive</xsl:otherwise>
				</xsl:choose>
			</xsl:with-param>
		</xsl:call-template>
		<!-- Columns rosterd does not know become custom attributes. -->
		<xsl:call-template name="field"><xsl:with-param name="value" select="wd:Location/@wd:Descriptor"/></xsl:call-template>
		<xsl:call-template name="field">
			<xsl:with-param name="value" select="wd:Worker/wd:ID[@wd:type='WID']"/>
			<xsl:with-param name="last" select="true()"/>
		</xsl:call-template>
	</xsl:template>

	<!-- field writes one CSV field and the separator after it (a comma, or
	     a line feed after the last field). Spaces are normalized; a value
	     holding a comma, a double quote or a line break is quoted, with
	     each double quote doubled (RFC 4180). -->
	<xsl:template name="field">
		<xsl:param name="value"/>
		<xsl:param name="last" select="false()"/>
		<xsl:variable name="v" select="normalize-space($value)"/>
		<xsl:choose>
			<xsl:when test="contains($v, ',') or contains($v, '&quot;') or contains($v, '&#10;') or contains($v, '&#13;')">
				<xsl:text>"</xsl:text>
				<xsl:call-template name="double-quotes"><xsl:with-param name="s" select="$v"/></xsl:call-template>
				<xsl:text>"</xsl:text>
			</xsl:when>
			<xsl:otherwise><xsl:value-of select="$v"/></xsl:otherwise>
		</xsl:choose>
		<xsl:choose>
			<xsl:when test="$last"><xsl:text>&#10;</xsl:text></xsl:when>
			<xsl:otherwise><xsl:text>,</xsl:text></xsl:otherwise>
		</xsl:choose>
	</xsl:template>

	<xsl:template name="double-quotes">
		<xsl:param name="s"/>
		<xsl:choose>
			<xsl:when test="contains($s, '&quot;')">
				<xsl:value-of select="substring-before($s, '&quot;')"/>
				<xsl:text>""</xsl:text>
				<xsl:call-template name="double-quotes"><xsl:with-param name="s" select="substring-after($s, '&quot;')"/></xsl:call-template>
			</xsl:when>
			<xsl:otherwise><xsl:value-of select="$s"/></xsl:otherwise>
		</xsl:choose>
	</xsl:template>
</xsl:stylesheet>
