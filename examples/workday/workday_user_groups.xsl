<?xml version="1.0" encoding="UTF-8"?>
<!--
  workday_user_groups.xsl: a Workday custom report (Report-as-a-Service
  XML, wd:Report_Data / wd:Report_Entry) to rosterd's user_groups.csv, one
  row per membership. Each worker is a member of a group for their
  department, their location, their cost center and each of their teams;
  the kind is part of the group name ("Location: Madrid"), so a department
  and a location with the same name stay two groups. XSLT 1.0:

      xsltproc workday_user_groups.xsl worker_directory.xml > user_groups.csv

  Change the xmlns:wd URI below to your report's (Workday names the
  namespace after the report), and add or remove the membership sources
  in the Report_Entry template to suit your organization.
-->
<xsl:stylesheet version="1.0"
	xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
	xmlns:wd="urn:com.workday.report/INT_rosterd_Worker_Directory">

	<xsl:output method="text" encoding="UTF-8"/>
	<xsl:strip-space elements="*"/>

	<xsl:template match="/">
		<xsl:text>group_name,user_id&#10;</xsl:text>
		<xsl:apply-templates select="wd:Report_Data/wd:Report_Entry"/>
	</xsl:template>

	<xsl:template match="wd:Report_Entry">
		<xsl:variable name="user_id" select="normalize-space(wd:Employee_ID)"/>
		<xsl:for-each select="wd:Department | wd:Location | wd:Cost_Center | wd:Team">
			<xsl:variable name="name" select="normalize-space(@wd:Descriptor)"/>
			<xsl:if test="$name != '' and $user_id != ''">
				<xsl:variable name="kind">
					<xsl:choose>
						<xsl:when test="self::wd:Department">Department</xsl:when>
						<xsl:when test="self::wd:Location">Location</xsl:when>
						<xsl:when test="self::wd:Cost_Center">Cost Center</xsl:when>
						<xsl:otherwise>Team</xsl:otherwise>
					</xsl:choose>
				</xsl:variable>
				<xsl:call-template name="field"><xsl:with-param name="value" select="concat($kind, ': ', $name)"/></xsl:call-template>
				<xsl:call-template name="field">
					<xsl:with-param name="value" select="$user_id"/>
					<xsl:with-param name="last" select="true()"/>
				</xsl:call-template>
			</xsl:if>
		</xsl:for-each>
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
